/* jsonutil.c — see jsonutil.h. */
#include "jsonutil.h"
#include "util.h"
#include <string.h>

json_object *json_parse_text(const char *text, size_t n, const char *what)
{
    if (n > (size_t)INT32_MAX) { err_set("%s: JSON text too large", what); return NULL; }
    json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, text, (int)n);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || e != json_tokener_success) {
        if (o) json_object_put(o);
        err_set("%s: invalid JSON at byte %zu: %s", what, used,
                e == json_tokener_continue ? "unexpected end of text" : json_tokener_error_desc(e));
        return NULL;
    }
    for (size_t i = used; i < n; i++) {
        char c = text[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != 0) {
            json_object_put(o);
            err_set("%s: unexpected data after the JSON value at byte %zu", what, i);
            return NULL;
        }
        if (c == 0) break;
    }
    return o;
}

json_object *json_parse_file(const char *path, size_t max_bytes)
{
    size_t n;
    char *text = util_read_file(path, max_bytes, &n);
    if (!text) return NULL;
    json_object *o = json_parse_text(text, n, path);
    free(text);
    return o;
}

json_object *json_load_object(const char *path, size_t max_bytes, char **text)
{
    size_t n;
    *text = util_read_file(path, max_bytes, &n);
    if (!*text) return NULL;
    json_object *o = json_parse_text(*text, n, path);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
        err_set("%s: not a JSON object", path);
    }
    if (!o) { free(*text); *text = NULL; }
    return o;
}

int64_t json_count_members(const char *s, size_t n)
{
    int depth = 0, in_str = 0;
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == ':' && depth == 1) count++;
    }
    return count;
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v)) return NULL;
    return v; /* NULL for JSON null too */
}

int json_get_int(json_object *o, const char *key, int64_t *out, const char *what)
{
    json_object *v = member(o, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_int))
        return err_set("%s: \"%s\" should be an integer, found %s", what, key, json_type_to_name(json_object_get_type(v)));
    *out = json_object_get_int64(v);
    return 1;
}

int json_get_double(json_object *o, const char *key, double *out, const char *what)
{
    json_object *v = member(o, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return err_set("%s: \"%s\" should be a number, found %s", what, key, json_type_to_name(json_object_get_type(v)));
    *out = json_object_get_double(v);
    return 1;
}

int json_get_string(json_object *o, const char *key, const char **out, const char *what)
{
    json_object *v = member(o, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_string))
        return err_set("%s: \"%s\" should be a string, found %s", what, key, json_type_to_name(json_object_get_type(v)));
    *out = json_object_get_string(v);
    return 1;
}

int json_get_bool(json_object *o, const char *key, int *out, const char *what)
{
    json_object *v = member(o, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return err_set("%s: \"%s\" should be true or false, found %s", what, key, json_type_to_name(json_object_get_type(v)));
    *out = json_object_get_boolean(v);
    return 1;
}

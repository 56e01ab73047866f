/* jsonutil.c — see jsonutil.h. */
#include "jsonutil.h"
#include "util.h"
#include <ctype.h>
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

/* --- RFC 8259 grammar, recursive descent ----------------------------------------------------- */
typedef struct { const char *s; size_t n, i; int depth; const char *why; } jscan;

static int js_fail(jscan *j, const char *why)
{
    if (!j->why) j->why = j->i >= j->n ? "unexpected end of text" : why;
    return -1;
}
static int js_peek(const jscan *j) { return j->i < j->n ? (unsigned char)j->s[j->i] : -1; }
static void js_ws(jscan *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r')) j->i++;
}
static int js_digits(jscan *j)
{
    size_t at = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
    return j->i > at ? 0 : js_fail(j, "a digit expected");
}
static int js_number(jscan *j)
{
    if (js_peek(j) == '-') j->i++;
    if (js_peek(j) == '0') {
        j->i++;
        if (js_peek(j) >= '0' && js_peek(j) <= '9') return js_fail(j, "leading zero in a number");
    } else if (js_digits(j) != 0) return -1;
    if (js_peek(j) == '.') { j->i++; if (js_digits(j) != 0) return -1; }
    if (js_peek(j) == 'e' || js_peek(j) == 'E') {
        j->i++;
        if (js_peek(j) == '+' || js_peek(j) == '-') j->i++;
        if (js_digits(j) != 0) return -1;
    }
    return 0;
}
static int js_string(jscan *j)
{
    j->i++; /* the opening quote */
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == '"') { j->i++; return 0; }
        if (c < 0x20) return js_fail(j, "control character in a string (it must be escaped)");
        if (c != '\\') { j->i++; continue; }
        j->i++;
        int e = js_peek(j);
        if (e < 0) break;
        if (e == 'u') {
            for (int k = 1; k <= 4; k++)
                if (j->i + k >= j->n || !isxdigit((unsigned char)j->s[j->i + k])) {
                    j->i += (size_t)k;
                    return js_fail(j, "\\u escape without 4 hex digits");
                }
            j->i += 5;
        } else if (e && strchr("\"\\/bfnrt", e)) j->i++;
        else return js_fail(j, "invalid escape in a string");
    }
    return js_fail(j, "unexpected end of text in a string");
}
static int js_value(jscan *j);
/* an object or array: open at j->i, members until close */
static int js_container(jscan *j, char close)
{
    if (++j->depth > 128) return js_fail(j, "nested more than 128 deep");
    j->i++;
    js_ws(j);
    if (js_peek(j) == close) { j->i++; j->depth--; return 0; }
    for (;;) {
        if (close == '}') {
            if (js_peek(j) != '"') return js_fail(j, "a string key expected");
            if (js_string(j) != 0) return -1;
            js_ws(j);
            if (js_peek(j) != ':') return js_fail(j, "':' expected");
            j->i++;
        }
        if (js_value(j) != 0) return -1;
        js_ws(j);
        if (js_peek(j) == close) { j->i++; j->depth--; return 0; }
        if (js_peek(j) != ',') return js_fail(j, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
        j->i++;
        js_ws(j);
    }
}
static int js_value(jscan *j)
{
    js_ws(j);
    int c = js_peek(j);
    if (c == '{' || c == '[') return js_container(j, c == '{' ? '}' : ']');
    if (c == '"') return js_string(j);
    if (c == '-' || (c >= '0' && c <= '9')) return js_number(j);
    static const char *const lit[] = { "true", "false", "null" };
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(lit[k]);
        if (j->n - j->i >= len && memcmp(j->s + j->i, lit[k], len) == 0) { j->i += len; return 0; }
    }
    return js_fail(j, c < 0 ? "unexpected end of text" : "a JSON value expected");
}

const char *json_check_rfc8259(const char *text, size_t n, size_t *at)
{
    jscan j = { text, n, 0, 0, NULL };
    if (js_value(&j) == 0) {
        js_ws(&j);
        if (j.i < n) js_fail(&j, "unexpected data after the JSON value");
    }
    *at = j.i;
    return j.why;
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

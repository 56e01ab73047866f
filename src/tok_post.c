/* tok_post.c — the post-processors of HF `tokenizers`, for one sequence: TemplateProcessing (its
 * "single" template: special tokens, one $A, special tokens), BertProcessing and
 * RobertaProcessing ([cls] $A [sep]), ByteLevel (offsets only: nothing for ids), and Sequence of
 * them. They leave the ids before (pre) and after (post) the sequence. */
#include "tok_int.h"
#include "jsonutil.h"
#include "util.h"
#include <string.h>

static int push_special(tokenizer *t, int after, int64_t id, const char *path)
{
    if (id < 0 || id > INT32_MAX) return err_set("%s: post_processor: special token id %lld is out of range", path, (long long)id);
    int *n = after ? &t->n_post : &t->n_pre;
    if (*n == TOK_MAX_AFFIX) return err_set("%s: post_processor: more than %d special tokens on one side", path, TOK_MAX_AFFIX);
    (after ? t->post : t->pre)[(*n)++] = (int32_t)id;
    return 0;
}

static int parse_template(tokenizer *t, json_object *pp, const char *path)
{
    json_object *single, *specials;
    if (!json_object_object_get_ex(pp, "single", &single) || !json_object_is_type(single, json_type_array))
        return err_set("%s: post_processor TemplateProcessing has no \"single\" array", path);
    if (tok_get_object(pp, "special_tokens", &specials, path) < 0) return -1;
    int seen = 0;
    for (size_t i = 0; i < json_object_array_length(single); i++) {
        json_object *item = json_object_array_get_idx(single, i), *v;
        if (!json_object_is_type(item, json_type_object))
            return err_set("%s: post_processor.single[%zu] should be an object", path, i);
        const char *name = NULL;
        if (tok_get_object(item, "Sequence", &v, path) < 0) return -1;
        if (v) {
            if (json_get_string(v, "id", &name, path) < 0) return -1;
            if (seen || !name || strcmp(name, "A"))
                return err_set("%s: post_processor.single: only one sequence \"A\" is supported", path);
            seen = 1;
            continue;
        }
        if (tok_get_object(item, "SpecialToken", &v, path) < 0) return -1;
        if (!v || json_get_string(v, "id", &name, path) != 1)
            return err_set("%s: post_processor.single[%zu]: expected a Sequence or a SpecialToken with an \"id\"", path, i);
        json_object *sp, *arr;
        if (!specials || !json_object_object_get_ex(specials, name, &sp) || !json_object_is_type(sp, json_type_object) ||
            !json_object_object_get_ex(sp, "ids", &arr) || !json_object_is_type(arr, json_type_array))
            return err_set("%s: post_processor: special token \"%s\" has no \"ids\" in special_tokens", path, name);
        for (size_t j = 0; j < json_object_array_length(arr); j++) {
            json_object *x = json_object_array_get_idx(arr, j);
            if (!json_object_is_type(x, json_type_int))
                return err_set("%s: post_processor: special_tokens \"%s\" ids should be integers", path, name);
            if (push_special(t, seen, json_object_get_int64(x), path)) return -1;
        }
    }
    if (!seen) return err_set("%s: post_processor.single has no sequence \"A\"", path);
    return 0;
}

/* BertProcessing / RobertaProcessing: "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]. */
static int parse_cls_sep(tokenizer *t, json_object *pp, const char *type, const char *path)
{
    static const char *keys[2] = {"cls", "sep"};
    for (int k = 0; k < 2; k++) {
        json_object *v, *id;
        if (!json_object_object_get_ex(pp, keys[k], &v) || !json_object_is_type(v, json_type_array) ||
            json_object_array_length(v) != 2 || !(id = json_object_array_get_idx(v, 1)) || !json_object_is_type(id, json_type_int))
            return err_set("%s: post_processor %s: \"%s\" should be [token, id]", path, type, keys[k]);
        if (push_special(t, k, json_object_get_int64(id), path)) return -1;
    }
    return 0;
}

static int parse_one(tokenizer *t, json_object *post, const char *path, int depth)
{
    const char *type = NULL;
    if (json_get_string(post, "type", &type, path) < 0) return -1;
    if (type && !strcmp(type, "TemplateProcessing")) return parse_template(t, post, path);
    if (type && (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing"))) return parse_cls_sep(t, post, type, path);
    if (type && !strcmp(type, "ByteLevel")) return 0;
    if (type && !strcmp(type, "Sequence") && depth < 2) {
        json_object *arr;
        if (!json_object_object_get_ex(post, "processors", &arr) || !json_object_is_type(arr, json_type_array))
            return err_set("%s: post_processor Sequence needs a \"processors\" array", path);
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            json_object *p = json_object_array_get_idx(arr, i);
            if (!json_object_is_type(p, json_type_object)) return err_set("%s: post_processor Sequence: processors[%zu] should be an object", path, i);
            if (parse_one(t, p, path, depth + 1)) return -1;
        }
        return 0;
    }
    return err_set("%s: post_processor \"%s\" is not supported (TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, "
                   "Sequence)", path, type ? type : "(none)");
}

int tok_parse_post(tokenizer *t, json_object *post, const char *path)
{
    return post ? parse_one(t, post, path, 0) : 0;
}

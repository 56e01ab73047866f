/* jsonutil.h — reading Hugging Face JSON files with json-c.
 *
 * Why json-c (Debian libjson-c-dev): it is on every Debian system, its lookups are
 * case-sensitive, it parses the Infinity/NaN that Python's json module writes into HF files, and
 * integers too large for 64 bits (tokenizer_config's 1000000000000000019884624838656) saturate
 * instead of failing the whole file. Duplicate keys: the last one wins, as in Python's json, which
 * is what transformers reads these files with; the safetensors header, whose reference reader
 * rejects duplicates, counts its members separately (json_count_members). jansson rejects such
 * integers and Infinity; cJSON's lookups are case-insensitive and return the first duplicate. */
#ifndef ATTNSCOPE_JSONUTIL_H
#define ATTNSCOPE_JSONUTIL_H
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text[0..n) as one JSON value (UTF-8 validated, nothing but whitespace after it).
 * `what` names the file in the error. Returns a new reference, or NULL with err_set(). */
json_object *json_parse_text(const char *text, size_t n, const char *what);
/* Reads and parses a file of at most max_bytes. NULL with err_set() on failure. */
json_object *json_parse_file(const char *path, size_t max_bytes);
/* The same for a file that must hold one JSON object (a config.json), keeping its bytes: *text
 * receives them (the caller frees them, and puts the object). NULL with err_set() and *text NULL
 * on failure. */
json_object *json_load_object(const char *path, size_t max_bytes, char **text);

/* Checks that text[0..n) is one JSON value exactly as RFC 8259 writes it (what serde_json, the
 * safetensors reference, accepts): no comments, trailing commas, single quotes, NaN/Infinity,
 * leading zeros or raw control characters in strings, which json-c takes; whitespace only space,
 * tab, CR, LF; nesting at most 128 deep (serde_json's limit). Returns NULL when it is, else the
 * problem, with *at set to its byte offset. Escapes are checked for form only (4 hex digits). */
const char *json_check_rfc8259(const char *text, size_t n, size_t *at);

/* Number of members of the top-level object in text[0..n) counted lexically, duplicates included
 * (the text must already have parsed as an object). */
int64_t json_count_members(const char *text, size_t n);

/* Typed member lookups. Each returns 1 if found with the right type and stores it, 0 if absent
 * (or JSON null), -1 with err_set("<what>: <key>: ...") if present with the wrong type. */
int json_get_int(json_object *o, const char *key, int64_t *out, const char *what);
int json_get_double(json_object *o, const char *key, double *out, const char *what);
int json_get_string(json_object *o, const char *key, const char **out, const char *what);
int json_get_bool(json_object *o, const char *key, int *out, const char *what);
#endif

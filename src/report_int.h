/* report_int.h — private to the reducer's figures (report.c, report_vision.c): the list of index
 * entries and the strings and buffers they point to. */
#ifndef ATTNSCOPE_REPORT_INT_H
#define ATTNSCOPE_REPORT_INT_H
#include "figure.h"
#include "util.h"
#include <hdf5.h>

#define MAX_ENTRIES 96
typedef struct {
    fig_html_entry e[MAX_ENTRIES];
    int n;
    char **owned;                   /* strings and buffers the entries point to (grown as needed) */
    int n_owned, cap_owned;
} html_list;

/* p, freed with the list (a model of 80 layers x 64 heads keeps thousands of labels) */
static inline char *keep(html_list *h, char *p)
{
    if (h->n_owned == h->cap_owned) {
        h->cap_owned = h->cap_owned ? 2 * h->cap_owned : 256;
        h->owned = xrealloc(h->owned, (size_t)h->cap_owned * sizeof *h->owned);
    }
    h->owned[h->n_owned++] = p;
    return p;
}
/* frees the list and every string and buffer it keeps */
static inline void html_list_free(html_list *h)
{
    for (int i = 0; i < h->n_owned; i++) free(h->owned[i]);
    free(h->owned);
    free(h);
}
static inline char *keep_str(html_list *h, const char *s) { return keep(h, xstrdup(s)); }
/* the file name of path (its last component) */
char *report_base_name(const char *path);
/* adds a drawn PNG to the index (and says so on stdout) */
void report_image_entry(html_list *h, const char *path, const char *caption);
/* The vision figures of a run of a patch-stem model (report_vision.c): the mean attention
 * distance in pixels against depth, and for the first images the [CLS] attention per layer and
 * per head of the last layer and the rollout, over the picture. Nothing when the file has no
 * /vision. Returns 0, or -1 with err_set(). */
int report_vision(hid_t f, const char *file, const char *dir, int L, int H, int n_images, html_list *h);
/* The model's input image of sample i as RGB bytes (h, w, 3): its file (/images/path) through the
 * model's processor (root attribute model_dir), rescale and normalisation undone; NULL when the run
 * has no image paths, the file is gone or comes out at another size. Caller frees. */
uint8_t *report_input_image(hid_t f, int64_t i, int h, int w);
#endif

/* report.h — the figures of `attnscope reduce --figures DIR`, drawn from the dataset summary and
 * the file, and the static index.html that shows them with their numbers on hover:
 *   <stat>_mean.png        layer x head grid of every statistic (the exemplar statistic's caption
 *                          lists every head's exemplar samples)
 *   distance_by_layer.png  mean attention distance against layer, one dot per head
 *   head_similarity_js.png, head_similarity_js_clustered.png, head_similarity_cos.png
 *   attention_sI_lL_hH.png the exemplar samples of one head (needs /attention)
 *   sample_I_heads.png     every head of one sample (--sample; needs /attention) */
#ifndef ATTNSCOPE_REPORT_H
#define ATTNSCOPE_REPORT_H
#include "summary.h"

typedef struct {
    const char *dir;            /* the figures directory (created) */
    long sample, layer, head;   /* -1 when not given */
    const char *exemplar_stat;  /* a name of stats_names */
    int figure_images;          /* vision runs: the first images whose maps are drawn over them */
} report_opts;

/* Rank 0. Returns 0, or -1 with err_set() naming the file or figure. */
int report_write(const char *file, const summary *s, const report_opts *o);
/* Rank 0, `reduce` of a CNN run (a file with /cnn; reduce_cnn.c): /summary/cnn/stage_S_mean [C]
 * and stage_S_top_images [C, k] written into a copy of file renamed over it; with dir, the
 * feature-map figures and index.html there. 0, or -1 with err_set() naming the file. */
int reduce_cnn(const char *file, const char *dir, int k, int n_images);
#endif

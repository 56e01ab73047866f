/* cnn.h — a ResNet in Hugging Face's ResNetModel layout (model_type "resnet"), loaded from a
 * checkpoint directory, and its forward pass: the model of `attnscope run` for CNN feature maps
 * (issue 12 part 5). Its own small forward, not the transformer block of model.h.
 *
 * Structure (transformers' modeling_resnet.py): the embedder (conv 7x7 stride 2 pad 3 + batch
 * norm + ReLU, then max pool 3x3 stride 2 pad 1), then stages of residual layers — basic (conv
 * 3x3 + BN + ReLU, conv 3x3 + BN) or bottleneck (conv 1x1 to C/4, conv 3x3, conv 1x1 back to C,
 * each + BN, ReLU after the first two) — whose output is ReLU(branch + shortcut), the shortcut a
 * conv 1x1 + BN where channels or stride change, else the identity. Stage 0 has stride 2 only with
 * downsample_in_first_stage; every later stage's first layer has stride 2 (in the bottleneck's 3x3
 * conv, or its first 1x1 with downsample_in_bottleneck). No convolution has a bias.
 *
 * Batch norm runs in eval mode (its running statistics), so it is an affine map per channel and is
 * FOLDED into the convolution before it at load: w' = w·γ/√(var + ε), b' = β − mean·γ/√(var + ε)
 * (ε = 1e-5, torch's BatchNorm2d default; computed in double, stored float32). This changes the
 * rounding of HF's conv-then-BN by ~1e-7 relative.
 *
 * Convolution = the backend's conv_rows (im2col: the rows (B·OH·OW, Cin·k·k), k² times the input in
 * memory; a 1x1 convolution of stride 1 reads its input as the rows) + linear (GEMM) + activation
 * (ReLU); max pool and the residual add + ReLU are backend ops too. Activations stay in backend
 * memory, NHWC (the GEMM's output rows are pixels), in four slots; stage outputs are handed out
 * NCHW as HF's. */
#ifndef ATTNSCOPE_CNN_H
#define ATTNSCOPE_CNN_H
#include "backend.h"
#include <stdint.h>

#define CNN_MAX_STAGES 8

typedef struct {
    int num_channels, embedding_size;
    int n_stages;                          /* len(hidden_sizes) == len(depths) */
    int hidden_sizes[CNN_MAX_STAGES], depths[CNN_MAX_STAGES];
    int bottleneck;                        /* layer_type: 0 basic, 1 bottleneck */
    int downsample_in_first_stage, downsample_in_bottleneck;
    char *json_text;                       /* config.json as read (owned) */
} cnn_config;

/* One convolution with its batch norm folded in: w (cout, cin·k·k) in (ci, ky, kx) order, as
 * torch's (cout, cin, k, k) weight flattened; b (cout); both in backend memory. */
typedef struct {
    int cin, cout, k, stride, pad;
    float *w, *b;
} cnn_conv;

typedef struct {
    cnn_conv conv[3];                      /* the branch: 2 (basic) or 3 (bottleneck) convolutions */
    int n_conv;
    cnn_conv shortcut;                     /* shortcut.w NULL: the identity */
} cnn_layer;

typedef struct {
    cnn_config cfg;
    backend *be;
    char weight_prefix[16];                /* "" (ResNetModel) or "resnet." (ResNetForImageClassification) */
    char **weight_files; int n_weight_files;
    cnn_conv stem;
    cnn_layer *layers; int n_layers;       /* stage s's layers follow stage s-1's */
    void **owned; int n_owned;             /* every backend buffer of the weights */
    float *dcol; size_t cap_col;           /* backend scratch: a convolution's rows */
    float *act[4]; size_t cap_act[4];      /* backend activation slots (NHWC), grown on demand */
} cnn_model;

/* Whether dir/config.json says model_type "resnet" (a quick look; nothing is validated). */
int cnn_is_cnn(const char *dir);
/* Reads and validates dir/config.json (ResNetConfig's keys, each range-checked; hidden_act relu
 * only). 0, or -1 with err_set() naming the file and the key. */
int cnn_config_load(cnn_config *c, const char *dir);
void cnn_config_free(cnn_config *c);
/* Loads config.json and the safetensors weights of dir onto be (every tensor's presence, dtype and
 * shape checked against the config; batch norm folded). Refuses a backend other than "cpu".
 * 0, or -1 with err_set() naming the file and the tensor. */
int cnn_load(cnn_model *m, const char *dir, backend *be);
void cnn_free(cnn_model *m);
/* The shape of output s for H x W input images: s = 0 the embedder's (after the max pool), s =
 * 1..n_stages stage s's — HF's hidden_states[s]. Returns 0, or -1 with err_set() when an image
 * of H x W is too small for the model (a side would reach 0). */
int cnn_output_shape(const cnn_model *m, int H, int W, int s, int *C, int *h, int *w);
/* Runs B images px (B, num_channels, H, W) (host, preprocessed); of every output s = 0..n_stages
 * (C_s, h_s, w_s as cnn_output_shape) the per-channel statistics of backend.h channel_stats into
 * stats[s] (host, (3, B, C_s): mean, active fraction, entropy), computed where the maps are, and
 * when features is not NULL the maps into features[s] (host, (B, C_s, h_s, w_s)). Returns 0, or -1
 * with err_set() (the image too small, out of backend memory: not sticky, retry with fewer images). */
int cnn_forward(cnn_model *m, const float *px, int B, int H, int W, float *const *stats, float *const *features);
#endif

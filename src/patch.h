/* patch.h — the host side of the vision stem: images cut into the patch convolution's rows, and the
 * position table resampled to another patch grid as transformers' interpolate_pos_encoding does. */
#ifndef ATTNSCOPE_PATCH_H
#define ATTNSCOPE_PATCH_H
#include <stddef.h>

/* The patches of B images px (B, ch, H, W) as rows (B·gh·gw, ch·P·P), gh = H / P, gw = W / P
 * (floor: a stride-P convolution ignores the remainder), patches in row-major grid order (HF's
 * flatten of the convolution's output), each row in the convolution weight's (c, ky, kx) order, so
 * that the patch convolution is rows · W(C, ch·P·P)ᵀ. px is float32 when lut is NULL, else 8-bit,
 * each value v of channel c mapped to lut[c·256 + v] (the processor's rescale and normalize as a
 * table: imgproc_lut). */
void patch_rows(const void *px, const float *lut, int B, int ch, int H, int W, int P, float *rows);

/* The position table for a grid of gh × gw patches from one trained on g0 × g0 (rows: n_prefix
 * prefix tokens, then g0² patches, each of C floats): the prefix rows as they are, the patch rows
 * resampled bicubically as torch.nn.functional.interpolate(mode="bicubic", align_corners=False)
 * (cubic convolution with A = −0.75, source x = (dst + ½)·in/out − ½, edge indices clamped), in
 * float. out: (n_prefix + gh·gw, C). gh = gw = g0 copies the table. */
void patch_pos_interpolate(const float *table, int n_prefix, int g0, int C, int gh, int gw, float *out);
#endif

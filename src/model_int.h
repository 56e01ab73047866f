/* model_int.h — private to the model (model_load.c, model.c): what loading and the forward share. */
#ifndef ATTNSCOPE_MODEL_INT_H
#define ATTNSCOPE_MODEL_INT_H
#include "model.h"

/* The rotary frequencies for sequences of T positions into m->inv_freq (dynamic scaling depends
 * on T); m->rope_T records T. */
void model_upload_inv_freq(model *m, int T);
#endif

/* fuzz_st_index.c — a sharded checkpoint's model.safetensors.index.json through st_open_dir: the
 * weight_map, shard names (paths with "..", "/", missing files), tensors assigned to the wrong
 * shard or to two. The directory holds two small fixed shards, a.safetensors (tensors "x", "y")
 * and b.safetensors ("z"), written once. */
#include "fuzz_common.h"
#include "safetensors.h"
#include <string.h>

static void shard(const char *name, const char *hdr, size_t nbytes)
{
    uint8_t buf[512] = {0};
    uint64_t n = strlen(hdr);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, hdr, n);
    fuzz_file(name, buf, 8 + n + nbytes);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    shard("a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"y\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[8,12]}}", 12);
    shard("b.safetensors", "{\"__metadata__\":{\"format\":\"pt\"},\"z\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]}}", 2);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file("model.safetensors.index.json", data, size);
    FUZZ_GUARD();
    st_model m;
    if (st_open_dir(&m, fuzz_dir())) return 0;
    float out[2];
    for (int i = 0; i < m.ntensors; i++)
        if (m.tensors[i].numel <= 2) st_to_f32(&m.tensors[i], out);
    st_close(&m);
    return 0;
}

#version 450
// get_rows: dst[:, i] = dequant(src[:, ids[i]]), one invocation per output element.
// A source larger than maxStorageBufferRange is bound in windows of whole rows; each
// dispatch handles the ids that fall in its window [r0, r1).
#extension GL_GOOGLE_include_directive : require
#include "lm_common.glsl"

layout(local_size_x = 256) in;

layout(binding = 0) readonly buffer W8 { uint8_t w8[]; };
layout(binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(binding = 0) readonly buffer WF { float wf[]; };
layout(binding = 1) readonly buffer IDS { int ids[]; };
layout(binding = 2) writeonly buffer DST { float dst[]; };

layout(push_constant) uniform PC {
    uint src_off; // bytes: row r0 of the window
    uint src_nb1; // bytes between rows
    uint K;       // elements per row
    uint M;       // ids
    uint ids_off; // elements
    uint dst_off; // elements
    uint dst_nb1; // elements
    int r0, r1;   // rows bound in this window
    int n_rows;   // rows of the whole source (ids outside give 0, written by window 0)
} pc;

#include "lm_quant.glsl"

void main() {
    const uint n = pc.M * pc.K, stride = LM_N_WG * 256u;
    for (uint idx = LM_WG_ID * 256u + gl_LocalInvocationID.x; idx < n; idx += stride) {
        uint i = idx / pc.K, e = idx - i * pc.K;
        int id = ids[pc.ids_off + i];
        float v;
        if (id >= pc.r0 && id < pc.r1) {
            v = lm_w(pc.src_off + uint(id - pc.r0) * pc.src_nb1, e);
        } else if ((id < 0 || id >= pc.n_rows) && pc.r0 == 0) {
            v = 0.0;
        } else {
            continue;
        }
        dst[pc.dst_off + i * pc.dst_nb1 + e] = v;
    }
}

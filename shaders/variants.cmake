# Every shader variant the Vulkan backend embeds: lm_vk_shader(<name> <source> [DEFINES...]).
# A variant is one source compiled with -D defines; the C side refers to it as
# LM_VK_SHADER_<name> (kernels/vulkan, generated lm_vk_spirv.h). Adding a variant is one
# line here; the build compiles every one of them, so a shader that does not compile
# fails the build.

# weight types: float ones multiply in float, quantized ones (as the CPU backend) against
# 16-bit activations with integer dot products
set(LM_VK_FTYPES F32 F16 BF16)
set(LM_VK_QTYPES Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K)

foreach(t ${LM_VK_FTYPES} ${LM_VK_QTYPES})
  lm_vk_shader(get_rows_${t} get_rows.comp WTYPE_${t})
endforeach()
foreach(t ${LM_VK_FTYPES})
  lm_vk_shader(mul_mat_vec_${t} mul_mat_vec.comp WTYPE_${t})
  lm_vk_shader(mul_mat_tile_${t} mul_mat_vec.comp WTYPE_${t} TILED)
endforeach()
foreach(t ${LM_VK_QTYPES})
  lm_vk_shader(mul_mat_qvec_${t} mul_mat_qvec.comp WTYPE_${t})
  lm_vk_shader(mul_mat_qtile_${t} mul_mat_qvec.comp WTYPE_${t} TILED)
endforeach()
lm_vk_shader(quantize_act_32 quantize_act.comp ACT_BLK=32)
lm_vk_shader(quantize_act_256 quantize_act.comp ACT_BLK=256)

lm_vk_shader(rms_norm rms_norm.comp)
lm_vk_shader(rms_norm_f64 rms_norm.comp USE_F64)
lm_vk_shader(rope rope.comp)
lm_vk_shader(rope_f64 rope.comp USE_F64)
lm_vk_shader(kv_store_f16 kv_store.comp DST_F16)
lm_vk_shader(kv_store_f32 kv_store.comp DST_F32)
lm_vk_shader(kv_store_q8_0 kv_store.comp DST_Q8_0)
lm_vk_shader(attn_f16 attention.comp KV_F16)
lm_vk_shader(attn_f32 attention.comp KV_F32)
lm_vk_shader(attn_q8_0 attention.comp KV_Q8_0)
lm_vk_shader(attn_combine attn_combine.comp)
lm_vk_shader(attn_exact_f16 attn_exact.comp KV_F16 USE_F64)
lm_vk_shader(attn_exact_f32 attn_exact.comp KV_F32 USE_F64)
lm_vk_shader(attn_exact_q8_0 attn_exact.comp KV_Q8_0 USE_F64)
lm_vk_shader(swiglu elementwise.comp OP_SWIGLU)
lm_vk_shader(swiglu_f64 elementwise.comp OP_SWIGLU USE_F64)
lm_vk_shader(geglu elementwise.comp OP_GEGLU)
lm_vk_shader(add elementwise.comp OP_ADD)
lm_vk_shader(mul elementwise.comp OP_MUL)
lm_vk_shader(scale elementwise.comp OP_SCALE)
lm_vk_shader(argmax argmax.comp)
# copy: source type x destination type of the storage formats (F32, F16, BF16)
foreach(s F32 F16 BF16)
  foreach(d F32 F16 BF16)
    lm_vk_shader(copy_${s}_${d} copy.comp SRC_${s} DST_${d})
  endforeach()
endforeach()
lm_vk_shader(copy_RAW16 copy.comp RAW16)

/* Compute pipelines from the SPIR-V embedded at build time (shaders/variants.cmake). All
 * share one layout: 8 storage-buffer bindings and 128 bytes of push constants. Pipelines
 * are created on first use: a driver compiles each one, and a run needs a few of the
 * ~70 variants. */
#include "vk_internal.h"

lm_status lm__vk_pipelines_init(lm__vk *v) {
    VkDescriptorSetLayoutBinding b[LM_VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < LM_VK_MAX_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                              .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1,
                                              .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo li = {.sType =
                                              VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = LM_VK_MAX_BINDINGS,
                                          .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(v->dev, &li, NULL, &v->dsl);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateDescriptorSetLayout");
    VkPushConstantRange pc = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = LM_VK_MAX_PC_WORDS * 4};
    VkPipelineLayoutCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .setLayoutCount = 1,
                                     .pSetLayouts = &v->dsl,
                                     .pushConstantRangeCount = 1,
                                     .pPushConstantRanges = &pc};
    r = vkCreatePipelineLayout(v->dev, &pi, NULL, &v->layout);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreatePipelineLayout");
    return LM_OK;
}

void lm__vk_pipelines_close(lm__vk *v) {
    for (int i = 0; i < LM_VK_SHADER_COUNT; i++) {
        if (v->pipes[i]) vkDestroyPipeline(v->dev, v->pipes[i], NULL);
        if (v->modules[i]) vkDestroyShaderModule(v->dev, v->modules[i], NULL);
    }
    if (v->layout) vkDestroyPipelineLayout(v->dev, v->layout, NULL);
    if (v->dsl) vkDestroyDescriptorSetLayout(v->dev, v->dsl, NULL);
}

lm_status lm__vk_pipeline(lm__vk *v, lm_vk_shader_id id, VkPipeline *out) {
    if ((int)id < 0 || id >= LM_VK_SHADER_COUNT)
        return lm__error(LM_ERR_BACKEND, "vulkan: shader id %d out of range", (int)id);
    if (v->pipes[id]) {
        *out = v->pipes[id];
        return LM_OK;
    }
    const lm_vk_spirv *sp = &lm_vk_spirv_table[id];
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = sp->size,
                                   .pCode = sp->code};
    VkResult r = vkCreateShaderModule(v->dev, &mi, NULL, &v->modules[id]);
    if (r != VK_SUCCESS) {
        v->modules[id] = VK_NULL_HANDLE;
        return lm__error(LM_ERR_BACKEND, "vulkan: shader %s: vkCreateShaderModule: %s", sp->name,
                         lm__vk_result_str(r));
    }
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = v->modules[id],
                  .pName = "main"},
        .layout = v->layout};
    r = vkCreateComputePipelines(v->dev, VK_NULL_HANDLE, 1, &ci, NULL, &v->pipes[id]);
    if (r != VK_SUCCESS) {
        v->pipes[id] = VK_NULL_HANDLE;
        return lm__error(LM_ERR_BACKEND, "vulkan: shader %s: vkCreateComputePipelines: %s",
                         sp->name, lm__vk_result_str(r));
    }
    *out = v->pipes[id];
    return LM_OK;
}

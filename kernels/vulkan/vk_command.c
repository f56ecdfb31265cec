/* Command recording. Between begin() and end() every op appends a dispatch to one command
 * buffer, submitted at end() (or earlier when the host must see memory: sync, upload,
 * download). A barrier is recorded only where a dispatch reads or writes a range an
 * earlier dispatch since the last barrier wrote (or writes what one read): independent
 * dispatches (the q/k/v projections) may overlap. Outside begin..end an op runs at once.
 *
 * Step replay: a decode step's commands are the same every token (per-token values live in
 * device tensors, no push constant depends on them, and after the fence the host arena and
 * the activation arena hand out the same offsets again). So between begin and end the ops
 * only collect their dispatches (`pending`); end() compares them with the segments
 * recorded before (LM_VK_REPLAY_SLOTS, least recently used replaced) and re-submits the
 * equal one's command buffer, or records a new one from the list. A segment that a flush
 * split (sync, download, arena growth inside begin..end) is recorded the ordinary way;
 * a buffer destroyed since a segment was recorded retires it (buf_gen); profiling turns
 * replay off (timestamps are per recording). */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lm_status lm__vk_new_pool(lm__vk *v) {
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                               .descriptorCount = LM_VK_SETS_PER_POOL * LM_VK_MAX_BINDINGS};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = LM_VK_SETS_PER_POOL,
                                     .poolSizeCount = 1,
                                     .pPoolSizes = &ps};
    VkDescriptorPool *p = LM_REALLOC(v->dpools, (size_t)(v->n_dpools + 1) * sizeof *p);
    if (!p) return lm__error(LM_ERR_NOMEM, "vulkan: cannot grow the descriptor pool list");
    v->dpools = p;
    VkResult r = vkCreateDescriptorPool(v->dev, &pi, NULL, &v->dpools[v->n_dpools]);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateDescriptorPool");
    v->n_dpools++;
    return LM_OK;
}

lm_status lm__vk_commands_init(lm__vk *v) {
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = v->qfam};
    VkResult r = vkCreateCommandPool(v->dev, &pi, NULL, &v->cmd_pool);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateCommandPool");
    VkCommandBuffer cbs[2];
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = v->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 2};
    r = vkAllocateCommandBuffers(v->dev, &ai, cbs);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkAllocateCommandBuffers");
    v->cb = cbs[0];
    v->xfer_cb = cbs[1];
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    r = vkCreateFence(v->dev, &fi, NULL, &v->fence);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateFence");
    const char *e = getenv("LUMEN_VULKAN_REPLAY");
    v->replay = !(e && strcmp(e, "0") == 0);
    return lm__vk_new_pool(v);
}

void lm__vk_commands_close(lm__vk *v) {
    if (v->in_flight) vkWaitForFences(v->dev, 1, &v->fence, VK_TRUE, UINT64_MAX);
    for (int i = 0; i < LM_VK_REPLAY_SLOTS; i++) {
        if (v->seg[i].pool) vkDestroyDescriptorPool(v->dev, v->seg[i].pool, NULL);
        LM_FREE(v->seg[i].cmds);
    }
    LM_FREE(v->pending);
    for (int i = 0; i < v->n_dpools; i++) vkDestroyDescriptorPool(v->dev, v->dpools[i], NULL);
    LM_FREE(v->dpools);
    if (v->fence) vkDestroyFence(v->dev, v->fence, NULL);
    if (v->cmd_pool) vkDestroyCommandPool(v->dev, v->cmd_pool, NULL);
}

/* ---- profiling: a timestamp after each dispatch; the time between two is the later
 * dispatch's (barriers serialise dependent work, so this is close for a decode step) ---- */

lm_status lm__vk_profile_init(lm__vk *v) {
    const char *e = getenv("LUMEN_VULKAN_PROFILE");
    if (!e || !*e || strcmp(e, "0") == 0) return LM_OK;
    if (v->props.limits.timestampPeriod <= 0) return LM_OK;
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                .queryCount = LM_VK_MAX_QUERIES};
    VkResult r = vkCreateQueryPool(v->dev, &qi, NULL, &v->queries);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateQueryPool");
    return LM_OK;
}

static void lm__vk_profile_collect(lm__vk *v) {
    if (!v->queries || v->n_queries < 2) {
        v->n_queries = 0;
        return;
    }
    uint64_t ts[LM_VK_MAX_QUERIES];
    VkResult r = vkGetQueryPoolResults(v->dev, v->queries, 0, v->n_queries, sizeof ts, ts,
                                       sizeof ts[0], VK_QUERY_RESULT_64_BIT);
    if (r == VK_SUCCESS)
        for (uint32_t i = 1; i < v->n_queries; i++) {
            const lm_vk_shader_id id = v->query_shader[i];
            v->prof_ms[id] += (double)(ts[i] - ts[i - 1]) * v->props.limits.timestampPeriod * 1e-6;
            v->prof_n[id]++;
        }
    v->n_queries = 0;
}

void lm__vk_profile_report(lm__vk *v) {
    if (!v->queries) return;
    double total = 0;
    for (int i = 0; i < LM_VK_SHADER_COUNT; i++) total += v->prof_ms[i];
    lm__log(LM_LOG_INFO, "vulkan profile: %.1f ms of GPU time", total);
    for (int i = 0; i < LM_VK_SHADER_COUNT; i++)
        if (v->prof_n[i])
            lm__log(LM_LOG_INFO, "  %-22s %8llu dispatches %10.2f ms %5.1f %%",
                    lm_vk_spirv_table[i].name, (unsigned long long)v->prof_n[i], v->prof_ms[i],
                    100.0 * v->prof_ms[i] / (total > 0 ? total : 1));
    vkDestroyQueryPool(v->dev, v->queries, NULL);
    v->queries = VK_NULL_HANDLE;
}

static void lm__vk_timestamp(lm__vk *v, lm_vk_shader_id id) {
    if (!v->queries || v->n_queries >= LM_VK_MAX_QUERIES) return;
    v->query_shader[v->n_queries] = id;
    vkCmdWriteTimestamp(v->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, v->queries, v->n_queries++);
}

/* The submitted command buffer has finished: its descriptor sets and arena space are
 * free again. */
static lm_status lm__vk_wait(lm__vk *v) {
    if (!v->in_flight) return LM_OK;
    VkResult r = vkWaitForFences(v->dev, 1, &v->fence, VK_TRUE, UINT64_MAX);
    v->in_flight = 0;
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkWaitForFences");
    vkResetFences(v->dev, 1, &v->fence);
    lm__vk_profile_collect(v);
    for (int i = 0; i < v->n_dpools; i++) vkResetDescriptorPool(v->dev, v->dpools[i], 0);
    v->cur_dpool = 0;
    v->arena_used = 0;
    v->act_used = 0;
    v->memo.valid = 0;
    return LM_OK;
}

static void lm__vk_barrier(VkCommandBuffer cb, VkPipelineStageFlags src, VkAccessFlags sa,
                           VkPipelineStageFlags dst, VkAccessFlags da) {
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = sa, .dstAccessMask = da};
    vkCmdPipelineBarrier(cb, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* ---- hazards ---- */

static int lm__vk_overlaps(const lm__vk_hazard *list, int n, const lm__vk_hazard *h) {
    for (int i = 0; i < n; i++)
        if (list[i].buf == h->buf && list[i].lo < h->hi && h->lo < list[i].hi) return 1;
    return 0;
}

/* Into cb: a barrier if dispatch c conflicts with what ran since the last one; then note
 * c's reads and writes. */
static void lm__vk_track(lm__vk *v, VkCommandBuffer cb, const lm__vk_cmd *c) {
    lm__vk_hazard h[LM_VK_MAX_BINDINGS];
    int conflict = 0;
    for (int i = 0; i < c->n_bind; i++) {
        h[i] =
            (lm__vk_hazard){c->bind[i].buf->buf, c->bind[i].off, c->bind[i].off + c->bind[i].range};
        conflict |= lm__vk_overlaps(v->writes, v->n_writes, &h[i]);
        if (c->written & (1u << i)) conflict |= lm__vk_overlaps(v->reads, v->n_reads, &h[i]);
    }
    if (conflict || v->n_reads + c->n_bind > LM_VK_MAX_HAZARDS ||
        v->n_writes + c->n_bind > LM_VK_MAX_HAZARDS) {
        lm__vk_barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
        v->n_reads = v->n_writes = 0;
    }
    for (int i = 0; i < c->n_bind; i++) {
        if (c->written & (1u << i))
            v->writes[v->n_writes++] = h[i];
        else
            v->reads[v->n_reads++] = h[i];
    }
}

/* When the op is issued (recorded now or later): a write to the activations last
 * quantized makes their quantized copy stale. */
static void lm__vk_memo_note(lm__vk *v, const lm__vk_cmd *c) {
    for (int i = 0; i < c->n_bind; i++) {
        const VkDeviceSize lo = c->bind[i].off, hi = lo + c->bind[i].range;
        if ((c->written & (1u << i)) && v->memo.valid && v->memo.buf == c->bind[i].buf->buf &&
            v->memo.lo < hi && lo < v->memo.hi)
            v->memo.valid = 0;
    }
}

static lm_status lm__vk_set(lm__vk *v, VkDescriptorSet *out) {
    for (;;) {
        if (v->cur_dpool == v->n_dpools) LM_TRY(lm__vk_new_pool(v));
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = v->dpools[v->cur_dpool],
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &v->dsl};
        VkResult r = vkAllocateDescriptorSets(v->dev, &ai, out);
        if (r == VK_SUCCESS) return LM_OK;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
            return lm__vk_fail(r, "vkAllocateDescriptorSets");
        v->cur_dpool++;
    }
}

/* Record dispatch c into cb with descriptor set `set` (filled here). */
static lm_status lm__vk_record(lm__vk *v, VkCommandBuffer cb, VkDescriptorSet set,
                               const lm__vk_cmd *c) {
    VkPipeline pipe;
    LM_TRY(lm__vk_pipeline(v, c->shader, &pipe));
    VkDescriptorBufferInfo bi[LM_VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[LM_VK_MAX_BINDINGS];
    for (int i = 0; i < c->n_bind; i++) {
        bi[i] = (VkDescriptorBufferInfo){c->bind[i].buf->buf, c->bind[i].off, c->bind[i].range};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstSet = set,
                                      .dstBinding = (uint32_t)i,
                                      .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &bi[i]};
    }
    vkUpdateDescriptorSets(v->dev, (uint32_t)c->n_bind, w, 0, NULL);
    lm__vk_track(v, cb, c);
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, v->layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cb, v->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, LM_VK_MAX_PC_WORDS * 4,
                       c->pc);
    /* on CPU devices each workgroup costs a task: a few per thread, each looping longer */
    const uint64_t cap = v->max_groups ? v->max_groups : LM_VK_MAX_GROUPS;
    uint64_t x = c->n_groups < cap ? c->n_groups : cap;
    uint64_t y = (c->n_groups + x - 1) / x;
    if (y > LM_VK_MAX_GROUPS) y = LM_VK_MAX_GROUPS; /* the shaders' loops cover the rest */
    vkCmdDispatch(cb, (uint32_t)x, (uint32_t)y, 1);
    return LM_OK;
}

/* ---- the ordinary command buffer: recorded as ops come, submitted once ---- */

static lm_status lm__vk_open(lm__vk *v) {
    if (v->cb_open) return LM_OK;
    LM_TRY(lm__vk_wait(v));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(v->cb, &bi);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkBeginCommandBuffer");
    v->cb_open = 1;
    v->n_recorded = 0;
    v->n_reads = v->n_writes = 0;
    if (v->queries) {
        vkCmdResetQueryPool(v->cb, v->queries, 0, LM_VK_MAX_QUERIES);
        lm__vk_timestamp(v, 0);
    }
    return LM_OK;
}

/* Record c into the ordinary command buffer. */
static lm_status lm__vk_record_now(lm__vk *v, const lm__vk_cmd *c) {
    LM_TRY(lm__vk_open(v));
    VkDescriptorSet set;
    LM_TRY(lm__vk_set(v, &set));
    LM_TRY(lm__vk_record(v, v->cb, set, c));
    lm__vk_timestamp(v, c->shader);
    v->n_recorded++;
    return LM_OK;
}

/* The collected dispatches into the ordinary command buffer (a segment not replayed). */
static lm_status lm__vk_record_pending(lm__vk *v) {
    lm_status s = LM_OK;
    for (int i = 0; s == LM_OK && i < v->n_pending; i++) s = lm__vk_record_now(v, &v->pending[i]);
    v->n_pending = 0;
    return s;
}

/* What the shaders wrote becomes visible to the host and to transfers. */
static void lm__vk_final_barrier(VkCommandBuffer cb) {
    lm__vk_barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                   VK_ACCESS_HOST_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT);
}

static lm_status lm__vk_submit_cb(lm__vk *v, VkCommandBuffer cb) {
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    VkResult r = vkQueueSubmit(v->queue, 1, &si, v->fence);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkQueueSubmit");
    v->in_flight = 1;
    return LM_OK;
}

/* End and submit the ordinary command buffer (no wait); dispatches still collected for
 * the open segment are recorded first, and the segment is then no longer replayable. */
static lm_status lm__vk_submit(lm__vk *v) {
    if (v->n_pending) {
        v->seg_broken = 1;
        LM_TRY(lm__vk_record_pending(v));
    }
    if (!v->cb_open) return LM_OK;
    v->cb_open = 0;
    if (v->n_recorded == 0) { /* nothing to run: drop it */
        vkEndCommandBuffer(v->cb);
        vkResetCommandBuffer(v->cb, 0);
        return LM_OK;
    }
    lm__vk_final_barrier(v->cb);
    VkResult r = vkEndCommandBuffer(v->cb);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkEndCommandBuffer");
    return lm__vk_submit_cb(v, v->cb);
}

lm_status lm__vk_flush(lm__vk *v) {
    LM_TRY(lm__vk_submit(v));
    return lm__vk_wait(v);
}

/* ---- replay ---- */

/* c with every byte defined (padding zeroed), so equal dispatches compare equal. */
static void lm__vk_canonical(const lm__vk_cmd *c, lm__vk_cmd *o) {
    memset(o, 0, sizeof *o);
    o->shader = c->shader;
    o->n_bind = c->n_bind;
    for (int i = 0; i < c->n_bind; i++) {
        o->bind[i].buf = c->bind[i].buf;
        o->bind[i].off = c->bind[i].off;
        o->bind[i].range = c->bind[i].range;
        o->bind[i].base = c->bind[i].base;
    }
    o->written = c->written;
    memcpy(o->pc, c->pc, (size_t)c->pc_words * 4);
    o->pc_words = c->pc_words;
    o->n_groups = c->n_groups;
}

static lm_status lm__vk_collect(lm__vk *v, const lm__vk_cmd *c) {
    if (v->n_pending == v->cap_pending) {
        int cap = v->cap_pending ? 2 * v->cap_pending : 256;
        lm__vk_cmd *p = LM_REALLOC(v->pending, (size_t)cap * sizeof *p);
        if (!p) return lm__error(LM_ERR_NOMEM, "vulkan: cannot grow the dispatch list");
        v->pending = p;
        v->cap_pending = cap;
    }
    lm__vk_canonical(c, &v->pending[v->n_pending++]);
    return LM_OK;
}

/* Record the pending dispatches into slot g's own command buffer and descriptor sets. */
static lm_status lm__vk_segment_record(lm__vk *v, lm__vk_segment *g) {
    const int n = v->n_pending;
    if (g->pool) vkDestroyDescriptorPool(v->dev, g->pool, NULL);
    g->pool = VK_NULL_HANDLE;
    g->n = 0;
    if (!g->cb) {
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = v->cmd_pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        VkResult r = vkAllocateCommandBuffers(v->dev, &ai, &g->cb);
        if (r != VK_SUCCESS) return lm__vk_fail(r, "vkAllocateCommandBuffers");
    }
    if (g->cap < n) {
        lm__vk_cmd *p = LM_REALLOC(g->cmds, (size_t)n * sizeof *p);
        if (!p) return lm__error(LM_ERR_NOMEM, "vulkan: cannot keep a recorded segment");
        g->cmds = p;
        g->cap = n;
    }
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                               .descriptorCount = (uint32_t)n * LM_VK_MAX_BINDINGS};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = (uint32_t)n,
                                     .poolSizeCount = 1,
                                     .pPoolSizes = &ps};
    VkResult r = vkCreateDescriptorPool(v->dev, &pi, NULL, &g->pool);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateDescriptorPool (segment)");
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    r = vkBeginCommandBuffer(g->cb, &bi);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkBeginCommandBuffer (segment)");
    v->n_reads = v->n_writes = 0;
    for (int i = 0; i < n; i++) {
        VkDescriptorSet set;
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = g->pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &v->dsl};
        r = vkAllocateDescriptorSets(v->dev, &ai, &set);
        if (r != VK_SUCCESS) {
            vkEndCommandBuffer(g->cb);
            return lm__vk_fail(r, "vkAllocateDescriptorSets (segment)");
        }
        lm_status s = lm__vk_record(v, g->cb, set, &v->pending[i]);
        if (s != LM_OK) {
            vkEndCommandBuffer(g->cb);
            return s;
        }
    }
    lm__vk_final_barrier(g->cb);
    r = vkEndCommandBuffer(g->cb);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkEndCommandBuffer (segment)");
    memcpy(g->cmds, v->pending, (size_t)n * sizeof *g->cmds);
    g->n = n;
    g->gen = v->buf_gen;
    return LM_OK;
}

/* end() of a whole segment: submit the recorded segment equal to it, or record one into
 * the least recently used slot. */
static lm_status lm__vk_segment_submit(lm__vk *v) {
    LM_TRY(lm__vk_wait(v)); /* a slot's buffer may still run; the fence is shared */
    lm__vk_segment *g = NULL, *lru = &v->seg[0];
    for (int i = 0; i < LM_VK_REPLAY_SLOTS && !g; i++) {
        lm__vk_segment *s = &v->seg[i];
        if (s->n == v->n_pending && s->gen == v->buf_gen &&
            memcmp(s->cmds, v->pending, (size_t)s->n * sizeof *s->cmds) == 0)
            g = s;
        if (s->used < lru->used) lru = s;
    }
    if (g) {
        v->n_replayed++;
        v->n_pending = 0;
    } else {
        g = lru;
        lm_status s = lm__vk_segment_record(v, g);
        if (s != LM_OK) { /* the slot is unusable; run the dispatches the ordinary way */
            g->n = 0;
            LM_TRY(lm__vk_record_pending(v));
            return lm__vk_submit(v);
        }
        v->n_pending = 0;
    }
    g->used = ++v->tick;
    v->n_segments++;
    return lm__vk_submit_cb(v, g->cb);
}

lm_status lm__vk_begin(lm__vk *v) {
    /* finished work resets the arenas, so a step's ops get the offsets they got before */
    LM_TRY(lm__vk_wait(v));
    v->recording = 1;
    v->seg_broken = v->n_pending > 0 || v->cb_open; /* leftovers of an interrupted segment */
    return LM_OK;
}

lm_status lm__vk_end(lm__vk *v) {
    v->recording = 0;
    if (v->n_pending && !v->seg_broken && !v->cb_open) return lm__vk_segment_submit(v);
    return lm__vk_submit(v);
}

void lm__vk_replay_stats(lm_backend *be, uint64_t *segments, uint64_t *replayed) {
    lm__vk *v = lm__vk_ctx(be);
    if (segments) *segments = v->n_segments;
    if (replayed) *replayed = v->n_replayed;
}

lm_status lm__vk_copy_now(lm__vk *v, VkBuffer src, VkDeviceSize so, VkBuffer dst, VkDeviceSize dof,
                          VkDeviceSize n) {
    LM_TRY(lm__vk_flush(v));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(v->xfer_cb, &bi);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkBeginCommandBuffer");
    lm__vk_barrier(v->xfer_cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                   VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                   VK_PIPELINE_STAGE_TRANSFER_BIT,
                   VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    VkBufferCopy region = {.srcOffset = so, .dstOffset = dof, .size = n};
    vkCmdCopyBuffer(v->xfer_cb, src, dst, 1, &region);
    lm__vk_barrier(v->xfer_cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       VK_ACCESS_HOST_READ_BIT);
    r = vkEndCommandBuffer(v->xfer_cb);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkEndCommandBuffer");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &v->xfer_cb};
    r = vkQueueSubmit(v->queue, 1, &si, v->fence);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkQueueSubmit (copy)");
    r = vkWaitForFences(v->dev, 1, &v->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(v->dev, 1, &v->fence);
    vkResetCommandBuffer(v->xfer_cb, 0);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkWaitForFences (copy)");
    return LM_OK;
}

lm_status lm__vk_run(lm__vk *v, const lm__vk_cmd *c) {
    VkPipeline pipe;
    LM_TRY(lm__vk_pipeline(v, c->shader, &pipe)); /* a missing shader fails at the op */
    if (c->n_groups == 0) return LM_OK;
    lm__vk_memo_note(v, c);
    if (v->recording && v->replay && !v->queries) return lm__vk_collect(v, c);
    LM_TRY(lm__vk_record_now(v, c));
    return v->recording ? LM_OK : lm__vk_flush(v);
}

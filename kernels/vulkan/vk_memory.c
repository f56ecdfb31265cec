/* Device memory: buffers are carved from large VkDeviceMemory blocks (first fit with
 * coalescing), big buffers get a block of their own. On integrated and CPU devices the
 * buffers live in memory that is both device-local and host-visible, so uploads and
 * downloads are plain memcpy; elsewhere they go through a host-visible staging buffer. */
#include "vk_internal.h"

#include <string.h>

#define LM_VK_USAGE                                                                                \
    (VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |                       \
     VK_BUFFER_USAGE_TRANSFER_DST_BIT)

static VkDeviceSize lm__vk_round(VkDeviceSize x, VkDeviceSize a) {
    return (x + a - 1) / a * a;
}

/* The first memory type in `bits` with all of `need`, preferring those with `want`;
 * UINT32_MAX if none. */
static uint32_t lm__vk_find_type(const lm__vk *v, uint32_t bits, VkMemoryPropertyFlags need,
                                 VkMemoryPropertyFlags want) {
    uint32_t fallback = UINT32_MAX;
    for (uint32_t i = 0; i < v->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = v->mem_props.memoryTypes[i].propertyFlags;
        if (!(bits & (1u << i)) || (f & need) != need) continue;
        if ((f & want) == want) return i;
        if (fallback == UINT32_MAX) fallback = i;
    }
    return fallback;
}

lm_status lm__vk_memory_init(lm__vk *v) {
    /* a probe buffer tells which memory types buffers of our usage may live in */
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = 256,
                             .usage = LM_VK_USAGE,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer probe;
    VkResult r = vkCreateBuffer(v->dev, &bi, NULL, &probe);
    if (r != VK_SUCCESS) return lm__vk_fail(r, "vkCreateBuffer (probe)");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(v->dev, probe, &req);
    vkDestroyBuffer(v->dev, probe, NULL);

    const VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    v->type_dev = UINT32_MAX;
    if (v->uma) /* integrated / CPU: one memory, use it directly from the host */
        v->type_dev = lm__vk_find_type(v, req.memoryTypeBits, local | host, cached);
    if (v->type_dev == UINT32_MAX) v->type_dev = lm__vk_find_type(v, req.memoryTypeBits, local, 0);
    if (v->type_dev == UINT32_MAX) v->type_dev = lm__vk_find_type(v, req.memoryTypeBits, 0, 0);
    v->type_host = lm__vk_find_type(v, req.memoryTypeBits, host, cached);
    if (v->type_dev == UINT32_MAX || v->type_host == UINT32_MAX)
        return lm__error(LM_ERR_UNSUPPORTED, "vulkan: %s has no suitable memory type",
                         v->props.deviceName);
    VkMemoryPropertyFlags f = v->mem_props.memoryTypes[v->type_dev].propertyFlags;
    v->dev_mapped = (f & host) == host;
    return LM_OK;
}

/* ---- blocks ---- */

static lm_status lm__vk_block_new(lm__vk *v, uint32_t type, VkDeviceSize size, lm__vk_block **out) {
    lm__vk_block *b = LM_CALLOC(1, sizeof *b);
    if (!b) return lm__error(LM_ERR_NOMEM, "vulkan: cannot allocate a memory block record");
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = size,
                               .memoryTypeIndex = type};
    VkResult r = vkAllocateMemory(v->dev, &ai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        LM_FREE(b);
        uint32_t heap = v->mem_props.memoryTypes[type].heapIndex;
        return lm__error(LM_ERR_NOMEM,
                         "vulkan: cannot allocate %.1f MiB of device memory on %s (heap %u of "
                         "%.1f MiB, %.1f MiB free): %s",
                         size / 1048576.0, v->props.deviceName, heap,
                         v->mem_props.memoryHeaps[heap].size / 1048576.0,
                         lm__vk_free_memory(v) / 1048576.0, lm__vk_result_str(r));
    }
    if (v->mem_props.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        void *p = NULL;
        r = vkMapMemory(v->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &p);
        if (r != VK_SUCCESS) {
            vkFreeMemory(v->dev, b->mem, NULL);
            LM_FREE(b);
            return lm__vk_fail(r, "vkMapMemory");
        }
        b->mapped = p;
    }
    b->free = LM_MALLOC(4 * sizeof *b->free);
    if (!b->free) {
        vkFreeMemory(v->dev, b->mem, NULL);
        LM_FREE(b);
        return lm__error(LM_ERR_NOMEM, "vulkan: cannot allocate a free list");
    }
    b->cap_free = 4;
    b->n_free = 1;
    b->free[0] = (lm__vk_range){0, size};
    b->size = size;
    b->type = type;
    b->next = v->blocks;
    v->blocks = b;
    *out = b;
    return LM_OK;
}

static void lm__vk_block_del(lm__vk *v, lm__vk_block *b) {
    for (lm__vk_block **p = &v->blocks; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
    if (b->mapped) vkUnmapMemory(v->dev, b->mem);
    vkFreeMemory(v->dev, b->mem, NULL);
    LM_FREE(b->free);
    LM_FREE(b);
}

/* First fit: returns 1 and the offset if the block has room. */
static int lm__vk_block_take(lm__vk_block *b, VkDeviceSize size, VkDeviceSize align,
                             VkDeviceSize *off) {
    for (int i = 0; i < b->n_free; i++) {
        lm__vk_range r = b->free[i];
        VkDeviceSize start = lm__vk_round(r.off, align);
        if (start + size > r.off + r.size) continue;
        VkDeviceSize tail = r.off + r.size - (start + size);
        int pieces = (start > r.off) + (tail > 0);
        if (pieces == 2 && b->n_free == b->cap_free) return 0; /* grown by the caller */
        if (pieces == 0) {
            memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *b->free);
            b->n_free--;
        } else if (pieces == 1) {
            b->free[i] = start > r.off ? (lm__vk_range){r.off, start - r.off}
                                       : (lm__vk_range){start + size, tail};
        } else {
            memmove(&b->free[i + 2], &b->free[i + 1],
                    (size_t)(b->n_free - i - 1) * sizeof *b->free);
            b->free[i] = (lm__vk_range){r.off, start - r.off};
            b->free[i + 1] = (lm__vk_range){start + size, tail};
            b->n_free++;
        }
        *off = start;
        b->n_live++;
        return 1;
    }
    return 0;
}

static int lm__vk_block_grow_list(lm__vk_block *b) {
    if (b->n_free < b->cap_free) return 1;
    lm__vk_range *p = LM_REALLOC(b->free, (size_t)b->cap_free * 2 * sizeof *p);
    if (!p) return 0;
    b->free = p;
    b->cap_free *= 2;
    return 1;
}

/* Give [off, off + size) back, merging with its neighbours. */
static void lm__vk_block_give(lm__vk_block *b, VkDeviceSize off, VkDeviceSize size) {
    int i = 0;
    while (i < b->n_free && b->free[i].off < off) i++;
    int merge_prev = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    int merge_next = i < b->n_free && off + size == b->free[i].off;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof *b->free);
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].off = off;
        b->free[i].size += size;
    } else if (lm__vk_block_grow_list(b)) {
        memmove(&b->free[i + 1], &b->free[i], (size_t)(b->n_free - i) * sizeof *b->free);
        b->free[i] = (lm__vk_range){off, size};
        b->n_free++;
    } /* else: out of host memory for the list; the range stays unused until the block goes */
    b->n_live--;
}

/* ---- buffers ---- */

lm_status lm__vk_buffer_new(lm__vk *v, size_t size, int host, lm_buffer **out) {
    *out = NULL;
    lm_buffer *b = LM_CALLOC(1, sizeof *b);
    if (!b) return lm__error(LM_ERR_NOMEM, "vulkan: cannot allocate a buffer record");
    /* 16 spare bytes: descriptor windows are rounded up to whole words */
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = lm__vk_round((VkDeviceSize)size + 16, 16),
                             .usage = LM_VK_USAGE,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(v->dev, &bi, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        LM_FREE(b);
        return lm__error(
            r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? LM_ERR_NOMEM
                                                                                   : LM_ERR_BACKEND,
            "vulkan: cannot create a buffer of %zu bytes: %s", size, lm__vk_result_str(r));
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(v->dev, b->buf, &req);
    uint32_t type = host ? v->type_host : v->type_dev;
    lm__vk_block *blk = NULL;
    VkDeviceSize off = 0;
    lm_status s = LM_OK;
    if (req.size <= LM_VK_BLOCK_SIZE / 2) { /* small: share a block */
        for (lm__vk_block *k = v->blocks; k && !blk; k = k->next)
            if (k->type == type && k->size == LM_VK_BLOCK_SIZE && lm__vk_block_grow_list(k) &&
                lm__vk_block_take(k, req.size, req.alignment, &off))
                blk = k;
        if (!blk) {
            s = lm__vk_block_new(v, type, LM_VK_BLOCK_SIZE, &blk);
            if (s == LM_OK) lm__vk_block_take(blk, req.size, req.alignment, &off);
        }
    } else { /* big: a block of its own */
        s = lm__vk_block_new(v, type, req.size, &blk);
        if (s == LM_OK) lm__vk_block_take(blk, req.size, req.alignment, &off);
    }
    if (s != LM_OK) {
        vkDestroyBuffer(v->dev, b->buf, NULL);
        LM_FREE(b);
        return s;
    }
    r = vkBindBufferMemory(v->dev, b->buf, blk->mem, off);
    if (r != VK_SUCCESS) {
        lm__vk_block_give(blk, off, req.size);
        if (blk->n_live == 0) lm__vk_block_del(v, blk);
        vkDestroyBuffer(v->dev, b->buf, NULL);
        LM_FREE(b);
        return lm__vk_fail(r, "vkBindBufferMemory");
    }
    b->block = blk;
    b->mem_off = off;
    b->mem_size = req.size;
    b->size = size;
    b->mapped = blk->mapped ? blk->mapped + off : NULL;
    *out = b;
    return LM_OK;
}

void lm__vk_buffer_del(lm__vk *v, lm_buffer *b) {
    if (!b) return;
    v->buf_gen++; /* recorded segments may bind it: they are not replayed again */
    vkDestroyBuffer(v->dev, b->buf, NULL);
    lm__vk_block_give(b->block, b->mem_off, b->mem_size);
    if (b->block->n_live == 0) lm__vk_block_del(v, b->block); /* no idle blocks kept */
    LM_FREE(b);
}

void lm__vk_memory_close(lm__vk *v) {
    while (v->blocks) lm__vk_block_del(v, v->blocks);
}

/* Free bytes of the buffers' heap: the driver's budget when VK_EXT_memory_budget is
 * there, else the heap size less what we hold. */
size_t lm__vk_free_memory(lm__vk *v) {
    uint32_t heap = v->mem_props.memoryTypes[v->type_dev].heapIndex;
    if (v->has_budget) {
        VkPhysicalDeviceMemoryBudgetPropertiesEXT bp = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
        VkPhysicalDeviceMemoryProperties2 mp = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &bp};
        vkGetPhysicalDeviceMemoryProperties2(v->pdev, &mp);
        VkDeviceSize b = bp.heapBudget[heap], u = bp.heapUsage[heap];
        if (b > 0) return b > u ? (size_t)(b - u) : 0;
    }
    VkDeviceSize used = 0;
    for (lm__vk_block *k = v->blocks; k; k = k->next)
        if (v->mem_props.memoryTypes[k->type].heapIndex == heap) used += k->size;
    VkDeviceSize size = v->mem_props.memoryHeaps[heap].size;
    return size > used ? (size_t)(size - used) : 0;
}

/* ---- host <-> device (the caller made sure the device is idle) ---- */

static lm_status lm__vk_staging(lm__vk *v) {
    if (!v->staging) LM_TRY(lm__vk_buffer_new(v, LM_VK_STAGING_SIZE, 1, &v->staging));
    return LM_OK;
}

lm_status lm__vk_write(lm__vk *v, lm_buffer *buf, size_t off, const void *src, size_t n) {
    if (n == 0) return LM_OK;
    if (buf->mapped) {
        memcpy(buf->mapped + off, src, n);
        return LM_OK;
    }
    LM_TRY(lm__vk_staging(v));
    for (size_t done = 0; done < n;) {
        size_t k = n - done < LM_VK_STAGING_SIZE ? n - done : LM_VK_STAGING_SIZE;
        memcpy(v->staging->mapped, (const char *)src + done, k);
        LM_TRY(lm__vk_copy_now(v, v->staging->buf, 0, buf->buf, off + done, k));
        done += k;
    }
    return LM_OK;
}

lm_status lm__vk_read(lm__vk *v, const lm_buffer *buf, size_t off, void *dst, size_t n) {
    if (n == 0) return LM_OK;
    if (buf->mapped) {
        memcpy(dst, buf->mapped + off, n);
        return LM_OK;
    }
    LM_TRY(lm__vk_staging(v));
    for (size_t done = 0; done < n;) {
        size_t k = n - done < LM_VK_STAGING_SIZE ? n - done : LM_VK_STAGING_SIZE;
        LM_TRY(lm__vk_copy_now(v, buf->buf, off + done, v->staging->buf, 0, k));
        memcpy((char *)dst + done, v->staging->mapped, k);
        done += k;
    }
    return LM_OK;
}

/* ---- the host arena: small per-dispatch tables, reset when the command buffer is ---- */

lm_status lm__vk_arena(lm__vk *v, size_t n, void **host, lm__vk_view *view) {
    size_t need = (size_t)lm__vk_round(n ? n : 4, v->bind_align);
    if (need > LM_VK_ARENA_SIZE)
        return lm__error(LM_ERR_LIMIT, "vulkan: a %zu-byte parameter table exceeds the arena", n);
    if (!v->arena) LM_TRY(lm__vk_buffer_new(v, LM_VK_ARENA_SIZE, 1, &v->arena));
    if (v->arena_used + need > LM_VK_ARENA_SIZE) LM_TRY(lm__vk_flush(v)); /* resets it */
    *host = v->arena->mapped + v->arena_used;
    view->buf = v->arena;
    view->off = v->arena_used;
    view->range = need;
    view->base = 0;
    v->arena_used += need;
    return LM_OK;
}

/* The transformer forward pass, written once in terms of backend ops. Architecture
 * differences are fields of lm_hparams / lm_arch (see model.c's table), not copies of
 * this loop: QKV bias, per-head Q/K norms, post-norms, embedding scale, the FFN
 * activation, sliding-window layers with their own RoPE base, soft-capping. */
#include "context.h"

#include "lm_internal.h"

#include <math.h>

/* A contiguous view of scratch tensor t with a new shape (same buffer and offset). */
static lm_tensor lm__view(const lm_tensor *t, int64_t ne0, int64_t ne1, int64_t ne2) {
    lm_tensor v;
    lm_tensor_init(&v, t->buf, t->offset, t->type, ne0, ne1, ne2, 1);
    return v;
}

/* The first n_rot dimensions of each head of x [hd, heads, T] (strided rows). */
static lm_tensor lm__rotated(const lm_tensor *x, int64_t n_rot) {
    lm_tensor v = *x;
    v.ne[0] = n_rot;
    return v;
}

/* Position rotation of q3 and k3 for layer il: sliding layers may have their own base. */
static lm_status lm__rope_qk(lm_context *c, int il, lm_tensor *q3, lm_tensor *k3,
                             const lm_tensor *pos) {
    const lm_hparams *hp = &c->model->hp;
    const lm_backend_ops *op = c->be->ops;
    bool swa = lm_hparams_swa(hp, il);
    lm_rope_params rp = {.mode = hp->arch->rope_mode,
                         .n_rot = hp->n_rot,
                         .freq_base = swa ? hp->rope_base_swa : hp->rope_base,
                         .freq_scale = swa ? hp->rope_scale_swa : hp->rope_scale,
                         .freq_factors = c->rope_factors};
    LM_TRY(op->rope(c->be, q3, pos, &rp));
    LM_TRY(op->rope(c->be, k3, pos, &rp));
    if (hp->rope_attn_factor != 1.0f) {
        /* LongRoPE scales cos and sin, i.e. the rotated dimensions of q and k */
        lm_tensor qr = lm__rotated(q3, hp->n_rot), kr = lm__rotated(k3, hp->n_rot);
        LM_TRY(op->scale(c->be, &qr, hp->rope_attn_factor, &qr));
        LM_TRY(op->scale(c->be, &kr, hp->rope_attn_factor, &kr));
    }
    return LM_OK;
}

static lm_status lm__attention_block(lm_context *c, const lm_layer *L, int il, int32_t T) {
    const lm_hparams *hp = &c->model->hp;
    const lm_arch *A = hp->arch;
    const lm_backend_ops *op = c->be->ops;
    lm_backend *be = c->be;
    lm_scratch *s = &c->s;
    int64_t hd = hp->head_dim, nq = hd * hp->n_head, nkv = hd * hp->n_head_kv;

    /* x [n_embd, T] -> RMS norm (xn: scratch) -> q [nq, T], k [nkv, T], v [nkv, T] (+ bias) */
    lm_tensor x = lm__view(&s->x, hp->n_embd, T, 1), xn = lm__view(&s->xn, hp->n_embd, T, 1);
    lm_tensor q = lm__view(&s->q, nq, T, 1), k = lm__view(&s->k, nkv, T, 1),
              v = lm__view(&s->v, nkv, T, 1);
    const lm_tensor *wqkv[3] = {&L->wq, &L->wk, &L->wv};
    lm_tensor *qkv[3] = {&q, &k, &v};
    LM_TRY(lm_backend_norm_mul_mat_n(be, &x, &L->attn_norm, hp->rms_eps, &xn, 3, wqkv, qkv));
    if (A->qkv_bias) {
        LM_TRY(op->add(be, &q, &L->bq, &q));
        LM_TRY(op->add(be, &k, &L->bk, &k));
        LM_TRY(op->add(be, &v, &L->bv, &v));
    }

    /* as [hd, heads, T]: per-head RMS norm of q and k, then rotate by position */
    lm_tensor q3 = lm__view(&s->q, hd, hp->n_head, T), k3 = lm__view(&s->k, hd, hp->n_head_kv, T),
              v3 = lm__view(&s->v, hd, hp->n_head_kv, T);
    if (A->qk_norm) {
        LM_TRY(op->rms_norm(be, &q3, &L->q_norm, hp->rms_eps, &q3));
        LM_TRY(op->rms_norm(be, &k3, &L->k_norm, hp->rms_eps, &k3));
    }
    lm_tensor pos = lm__view(&s->pos, T, 1, 1), seq = lm__view(&s->seq, T, 1, 1);
    LM_TRY(lm__rope_qk(c, il, &q3, &k3, &pos));

    /* k, v -> cache slots (pos, seq); q attends over its sequence's cache (the window on
     * sliding layers) */
    LM_TRY(op->kv_store(be, &k3, &v3, &c->k_cache[il], &c->v_cache[il], &pos, &seq));
    lm_tensor att = lm__view(&s->att, hd, hp->n_head, T);
    lm_attn_params ap = {.scale = hp->attn_scale,
                         .window = lm_hparams_swa(hp, il) ? hp->n_swa : 0,
                         .softcap = hp->attn_softcap};
    LM_TRY(op->attention(be, &q3, &c->k_cache[il], &c->v_cache[il], &pos, &seq, &ap, &att));

    /* att [nq, T] -> o [n_embd, T] (-> post-norm); x += o */
    lm_tensor att2 = lm__view(&s->att, nq, T, 1), o = lm__view(&s->o, hp->n_embd, T, 1);
    LM_TRY(op->mul_mat(be, &L->wo, &att2, &o));
    if (A->post_norms) LM_TRY(op->rms_norm(be, &o, &L->attn_post_norm, hp->rms_eps, &o));
    return op->add(be, &x, &o, &x);
}

static lm_status lm__ffn_block(lm_context *c, const lm_layer *L, int32_t T) {
    const lm_hparams *hp = &c->model->hp;
    const lm_backend_ops *op = c->be->ops;
    lm_backend *be = c->be;
    lm_scratch *s = &c->s;

    /* x -> xn -> gate, up [n_ff, T] -> act(gate) * up -> down [n_embd, T] (-> post-norm);
     * x += down */
    lm_tensor x = lm__view(&s->x, hp->n_embd, T, 1), xn = lm__view(&s->xn, hp->n_embd, T, 1);
    lm_tensor g = lm__view(&s->g, hp->n_ff, T, 1), u = lm__view(&s->u, hp->n_ff, T, 1);
    const lm_tensor *wgu[2] = {&L->w_gate, &L->w_up};
    lm_tensor *gu[2] = {&g, &u};
    LM_TRY(lm_backend_norm_mul_mat_n(be, &x, &L->ffn_norm, hp->rms_eps, &xn, 2, wgu, gu));
    if (hp->arch->act == LM_ACT_GELU)
        LM_TRY(op->geglu(be, &g, &u, &g));
    else
        LM_TRY(op->swiglu(be, &g, &u, &g));
    lm_tensor o = lm__view(&s->o, hp->n_embd, T, 1);
    LM_TRY(op->mul_mat(be, &L->w_down, &g, &o));
    if (hp->arch->post_norms) LM_TRY(op->rms_norm(be, &o, &L->ffn_post_norm, hp->rms_eps, &o));
    return op->add(be, &x, &o, &x);
}

lm_status lm_forward(lm_context *c, int32_t T, bool want_out) {
    const lm_model *m = c->model;
    const lm_hparams *hp = &m->hp;
    const lm_backend_ops *op = c->be->ops;
    lm_backend *be = c->be;
    lm_scratch *s = &c->s;

    LM_TRY(op->begin(be));
    /* token ids [T] -> x [n_embd, T] (Gemma: * sqrt(n_embd)) */
    lm_tensor ids = lm__view(&s->ids, T, 1, 1), x = lm__view(&s->x, hp->n_embd, T, 1);
    LM_TRY(op->get_rows(be, &m->tok_embd, &ids, &x));
    if (hp->arch->embd_scale) LM_TRY(op->scale(be, &x, sqrtf((float)hp->n_embd), &x));

    for (int il = 0; il < hp->n_layer; il++) {
        if (c->abort_fn && c->abort_fn(c->abort_user))
            return lm__error(LM_ERR_INTERRUPTED, "decode interrupted at layer %d", il);
        LM_TRY(lm__attention_block(c, &m->layers[il], il, T));
        LM_TRY(lm__ffn_block(c, &m->layers[il], T));
        if (c->hook) {
            LM_TRY(op->sync(be));
            c->hook(il, &x, c->hook_user);
        }
    }

    /* final norm x -> xn [n_embd, T], unless nobody reads logits (a prefill chunk) */
    if (want_out) {
        lm_tensor xn = lm__view(&s->xn, hp->n_embd, T, 1);
        LM_TRY(op->rms_norm(be, &x, &m->out_norm, hp->rms_eps, &xn));
    }
    LM_TRY(op->end(be));
    return op->sync(be);
}

lm_status lm_forward_logits(lm_context *c, int32_t r0, int32_t n) {
    const lm_model *m = c->model;
    const lm_hparams *hp = &m->hp;
    const lm_backend_ops *op = c->be->ops;
    lm_backend *be = c->be;
    lm_scratch *s = &c->s;

    /* rows out_idx[r0 ..] of xn: xs [n_embd, n] -> logits [n_vocab, n]. A final soft-cap
     * (Gemma 2) is applied on the host by lm_decode. */
    LM_TRY(op->begin(be));
    lm_tensor xn = lm__view(&s->xn, hp->n_embd, c->n_batch, 1);
    lm_tensor oi = lm__view(&s->out_idx, n, 1, 1);
    oi.offset += (size_t)r0 * sizeof(int32_t);
    lm_tensor xs = lm__view(&s->xs, hp->n_embd, n, 1);
    LM_TRY(op->get_rows(be, &xn, &oi, &xs));
    lm_tensor logits = lm__view(&s->logits, hp->n_vocab, n, 1);
    LM_TRY(op->mul_mat(be, &m->output, &xs, &logits));
    LM_TRY(op->end(be));
    return op->sync(be);
}

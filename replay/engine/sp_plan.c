/* The plan file: check and index it (layout in docs/replay.md "The plan file").
 * Every offset is checked against the buffer's length before use: a truncated or
 * foreign file is an error, never a read past the end. */
#include <stdio.h>
#include <string.h>

#include "sp_engine.h"

int sp_plan_open(struct sp_plan *plan, const void *buf, size_t len, char *err, size_t errlen)
{
	const char *base = buf;
	const struct sp_plan_header *h = buf;
	size_t at;

	if (len < sizeof *h || memcmp(h->magic, SP_PLAN_MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a syspage plan (no %s header)", SP_PLAN_MAGIC);
		return -1;
	}
	if (h->version != SP_PLAN_VERSION) {
		snprintf(err, errlen, "plan version %u, this engine reads %d", h->version, SP_PLAN_VERSION);
		return -1;
	}
	at = sizeof *h;
	size_t need = at + (size_t)h->n_classes * sizeof(struct sp_plan_class)
		+ (size_t)h->n_threads * sizeof(struct sp_plan_thread)
		+ (size_t)h->n_ops * sizeof(struct sp_plan_op)
		+ (size_t)h->n_strings * 4 + (size_t)h->strings_bytes;
	if (h->n_strings == 0 || h->strings_bytes == 0 || need != len) {
		snprintf(err, errlen, "plan is %zu bytes, its header says %zu (truncated or corrupt)", len, need);
		return -1;
	}
	plan->header = h;
	plan->classes = (const void *)(base + at);
	at += (size_t)h->n_classes * sizeof(struct sp_plan_class);
	plan->threads = (const void *)(base + at);
	at += (size_t)h->n_threads * sizeof(struct sp_plan_thread);
	plan->ops = (const void *)(base + at);
	at += (size_t)h->n_ops * sizeof(struct sp_plan_op);
	plan->string_offsets = (const void *)(base + at);
	at += (size_t)h->n_strings * 4;
	plan->strings = base + at;
	if (plan->strings[h->strings_bytes - 1] != '\0') {
		snprintf(err, errlen, "plan string blob is not NUL-terminated");
		return -1;
	}
	for (uint32_t i = 0; i < h->n_strings; i++)
		if (plan->string_offsets[i] >= h->strings_bytes) {
			snprintf(err, errlen, "plan string %u points outside the blob", i);
			return -1;
		}
	for (uint32_t i = 0; i < h->n_classes; i++) {
		const struct sp_plan_class *c = &plan->classes[i];
		if (c->host_op >= SP_OP_COUNT || c->page >= SP_PAGE_KIND_COUNT || c->access > SP_ACCESS_FOLLOW
		    || c->arg >= h->n_strings || (SP_FIELD_COUNT < 32 && (c->fields >> SP_FIELD_COUNT) != 0)) {
			snprintf(err, errlen, "plan class %u is out of range", i);
			return -1;
		}
	}
	for (uint32_t i = 0; i < h->n_threads; i++) {
		const struct sp_plan_thread *t = &plan->threads[i];
		if (t->first_op > h->n_ops || t->n_ops > h->n_ops - t->first_op) {
			snprintf(err, errlen, "plan thread %u's ops lie outside the op array", i);
			return -1;
		}
	}
	for (uint64_t i = 0; i < h->n_ops; i++) {
		const struct sp_plan_op *o = &plan->ops[i];
		if (o->cls >= h->n_classes || o->arg >= h->n_strings || o->gap_ns < 0) {
			snprintf(err, errlen, "plan op %llu is out of range", (unsigned long long)i);
			return -1;
		}
	}
	return 0;
}

const char *sp_plan_string(const struct sp_plan *plan, uint32_t index)
{
	return plan->strings + plan->string_offsets[index];
}

/* ---- values ---------------------------------------------------------------------------- */
#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

void sp_value_reset(struct sp_value *v, uint32_t fields)
{
	v->fields = fields;
	v->hash = 0; /* a sum of per-field hashes: the order fields are added in does not matter */
	v->text[0] = '\0';
}

void sp_value_add_int(struct sp_value *v, enum sp_field f, int64_t n)
{
	uint32_t id = f;
	if (!(v->fields & SP_FIELD_BIT(f)))
		return;
	v->hash += fnv_bytes(fnv_bytes(FNV_OFFSET, &id, sizeof id), &n, sizeof n);
	if (v->text[0] == '\0')
		snprintf(v->text, sizeof v->text, "%lld", (long long)n);
}

void sp_value_add_str(struct sp_value *v, enum sp_field f, const char *s, size_t maxlen)
{
	uint32_t id = f;
	if (!(v->fields & SP_FIELD_BIT(f)))
		return;
	size_t n = strnlen(s, maxlen);
	v->hash += fnv_bytes(fnv_bytes(FNV_OFFSET, &id, sizeof id), s, n);
	if (v->text[0] == '\0')
		snprintf(v->text, sizeof v->text, "%.*s", (int)(n < SP_VALUE_TEXT - 1 ? n : SP_VALUE_TEXT - 1), s);
}

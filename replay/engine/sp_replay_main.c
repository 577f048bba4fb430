/* sp_replay: the replay engine's C core as a static program, for machines without Python
 * (the patched kernel's QEMU guest, issue 10: `--impl page-kernel`).
 *
 * usage: sp_replay PLAN PROC [tight|paced] [SAMPLES] [WARMUPS] [MIN_SAMPLE_NS] [LOCKING]
 *
 * Runs traced process PROC of the plan file (docs/replay.md "The plan file") exactly as
 * syspage.replay._engine.run_process does, and prints the same result as one JSON object
 * on stdout. Build: `make -C replay/engine sp_replay` or syspage.replay.static.build(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_engine.h"

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_result(const struct sp_run_result *res)
{
	static const char *impl_names[SP_IMPL_COUNT] = {"syscall", "page"};
	printf("{\"timer_overhead_ns\": %.3f, \"loops\": {\"syscall\": %llu, \"page\": %llu}, "
	       "\"uts_private\": %s, \"n_threads\": %u, \"replay_pid\": %d, \"kside_pid\": %d, \"classes\": [",
	       res->timer_overhead_ns, (unsigned long long)res->loops[0], (unsigned long long)res->loops[1],
	       res->uts_private ? "true" : "false", res->n_threads, (int)res->replay_pid, (int)res->kside_pid);
	for (uint32_t c = 0; c < res->n_classes; c++) {
		const struct sp_class_result *cr = &res->classes[c];
		printf("%s{\"replayed\": %llu, \"skip_reason\": ", c ? ", " : "", (unsigned long long)cr->replayed);
		if (cr->skip_reason)
			json_string(cr->skip_reason);
		else
			printf("null");
		printf(", \"skip\": [%d, %d], \"checked\": %llu, \"mismatches\": %llu, \"first_mismatch\": ",
		       cr->skip[0], cr->skip[1], (unsigned long long)cr->checked, (unsigned long long)cr->mismatches);
		if (cr->mismatches) {
			printf("{\"page\": {\"hash\": %llu, \"text\": ", (unsigned long long)cr->first_page.hash);
			json_string(cr->first_page.text);
			printf("}, \"syscall\": {\"hash\": %llu, \"text\": ", (unsigned long long)cr->first_syscall.hash);
			json_string(cr->first_syscall.text);
			printf("}}");
		} else {
			printf("null");
		}
		printf(", \"samples\": {");
		int first = 1;
		for (int impl = 0; impl < SP_IMPL_COUNT; impl++) {
			if (!cr->samples[impl])
				continue;
			printf("%s\"%s\": [", first ? "" : ", ", impl_names[impl]);
			for (uint32_t s = 0; s < cr->n_samples[impl]; s++)
				printf("%s%.6f", s ? ", " : "", cr->samples[impl][s]);
			printf("]");
			first = 0;
		}
		printf("}}");
	}
	printf("]}\n");
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PLAN PROC [tight|paced] [SAMPLES] [WARMUPS] [MIN_SAMPLE_NS] [LOCKING]\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc(len > 0 ? (size_t)len : 1);
	if (!buf || len <= 0 || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "%s: cannot read the plan\n", argv[1]);
		return 2;
	}
	fclose(f);
	struct sp_run_config cfg = {
		.proc = (uint32_t)strtoul(argv[2], NULL, 10),
		.mode = argc > 3 && strcmp(argv[3], "paced") == 0 ? SP_MODE_PACED : SP_MODE_TIGHT,
		.impls = (1 << SP_IMPL_SYSCALL) | (1 << SP_IMPL_PAGE),
		.samples = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 5,
		.warmups = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 1,
		.min_sample_ns = argc > 6 ? strtoull(argv[6], NULL, 10) : 1000000,
		.max_gap_ns = 1000000,
		.locking = argc > 7 ? argv[7] : "page",
		.check = 1,
	};
	struct sp_plan plan;
	struct sp_run_result res;
	char err[256];
	if (sp_plan_open(&plan, buf, (size_t)len, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 2;
	}
	if (sp_run_process(&plan, &cfg, &res, err, sizeof err) != 0) {
		fprintf(stderr, "%s: replay process %u: %s\n", argv[1], cfg.proc, err);
		return 1;
	}
	print_result(&res);
	sp_run_result_free(&res);
	free(buf);
	return 0;
}

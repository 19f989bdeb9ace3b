/* SPDX-License-Identifier: MIT */
/* What every subcommand shares: common flags, messages and exit codes,
 * durations and numbers, the contract and schemas, topic names, file input. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_fail(cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", ctx->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_usage_error(cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", ctx->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrun `%s --help` for usage\n", ctx->name);
    return CLI_USAGE;
}

static int set_config(cli_ctx *ctx, const char *name, const char *arg)
{
    ev_error err;
    if (ev_config_set(&ctx->cfg, name, arg, &err) != 0)
        return cli_usage_error(ctx, "%s", err.text);
    return CLI_CONTINUE;
}

int cli_common_opt(cli_ctx *ctx, int opt, const char *arg)
{
    switch (opt) {
    case 'b':
        return set_config(ctx, "brokers", arg);
    case CLI_OPT_PREFIX:
        return set_config(ctx, "topic-prefix", arg);
    case CLI_OPT_SCHEMA_DIR:
        return set_config(ctx, "schema-dir", arg);
    case CLI_OPT_JSON:
        ctx->json = true;
        return CLI_CONTINUE;
    case 'h':
        if (ctx->usage != NULL)
            fputs(ctx->usage, stdout);
        return CLI_OK;
    default: /* '?' or ':' — getopt_long already said which option */
        fprintf(stderr, "run `%s --help` for usage\n", ctx->name);
        return CLI_USAGE;
    }
}

static const struct {
    const char *suffix;
    int64_t ms;
} units[] = {
    {"ms", 1}, {"s", 1000}, {"", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

bool cli_parse_duration(const char *s, int64_t *ms)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0 || v > 1e12)
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            *ms = (int64_t)(v * (double)units[i].ms);
            return true;
        }
    }
    return false;
}

bool cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

ev_contract *cli_contract(cli_ctx *ctx)
{
    char path[600];
    ev_error err;
    if (ctx->contract != NULL)
        return ctx->contract;
    snprintf(path, sizeof(path), "%s/choreography.json", ctx->cfg.schema_dir);
    if (ev_contract_load(&ctx->contract, path, &err) != 0) {
        ctx->contract = NULL;
        cli_fail(ctx,
                 "cannot load the contract %s: %s; set CHOREO_SCHEMA_DIR or "
                 "--schema-dir to the schemas/ directory",
                 path, err.text);
    }
    return ctx->contract;
}

ev_schema_set *cli_schemas(cli_ctx *ctx)
{
    ev_error err;
    if (ctx->schemas != NULL)
        return ctx->schemas;
    ctx->schemas = ev_schema_set_new();
    if (ctx->schemas == NULL) {
        cli_fail(ctx, "out of memory");
        return NULL;
    }
    if (ev_schema_set_load_dir(ctx->schemas, ctx->cfg.schema_dir, &err) != 0) {
        ev_schema_set_free(ctx->schemas);
        ctx->schemas = NULL;
        cli_fail(ctx,
                 "cannot load the schemas in %s: %s; set CHOREO_SCHEMA_DIR or "
                 "--schema-dir to the schemas/ directory",
                 ctx->cfg.schema_dir, err.text);
    }
    return ctx->schemas;
}

void cli_ctx_free(cli_ctx *ctx)
{
    ev_contract_free(ctx->contract);
    ctx->contract = NULL;
    ev_schema_set_free(ctx->schemas);
    ctx->schemas = NULL;
}

void cli_topic(const cli_ctx *ctx, const char *topic, char *out)
{
    snprintf(out, CLI_TOPIC_MAX, "%s%s", ctx->cfg.topic_prefix, topic);
}

void cli_service_group(const cli_ctx *ctx, const char *service, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", ctx->cfg.topic_prefix, service);
}

void cli_dlq_topic(const cli_ctx *ctx, const char *service, char *out)
{
    snprintf(out, CLI_TOPIC_MAX, "%sdlq.%s", ctx->cfg.topic_prefix, service);
}

void cli_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

char **cli_contract_topics(cli_ctx *ctx)
{
    ev_contract *c = cli_contract(ctx);
    if (c == NULL)
        return NULL;
    const char *const *t = ev_contract_topics(c);
    size_t n = 0;
    while (t[n] != NULL)
        n++;
    char **out = calloc(n + 1, sizeof(*out));
    if (out == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        out[i] = malloc(CLI_TOPIC_MAX);
        if (out[i] == NULL)
            goto oom;
        cli_topic(ctx, t[i], out[i]);
    }
    return out;
oom:
    cli_strv_free(out);
    cli_fail(ctx, "out of memory");
    return NULL;
}

int cli_read_file(cli_ctx *ctx, const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    int rc = CLI_FAIL;
    if (f == NULL)
        return cli_fail(ctx, "cannot open %s: %s", path, strerror(errno));
    buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (ferror(f)) {
            cli_fail(ctx, "cannot read %s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (feof(f))
            break;
        char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL)
            break;
        buf = bigger;
        cap *= 2;
    }
    if (buf == NULL || !feof(f)) {
        cli_fail(ctx, "out of memory reading %s", path);
        goto cleanup;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = CLI_OK;
cleanup:
    free(buf);
    if (f != stdin)
        fclose(f);
    return rc;
}

void cli_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return;
    puts(s);
    free(s);
}

const char *cli_color(const cli_ctx *ctx, const char *ansi)
{
    return ctx->color ? ansi : "";
}

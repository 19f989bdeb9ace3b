/* SPDX-License-Identifier: MIT */
/* The C side of tests/fuzz/differential.py: reads lines "<schema uri>\t<JSON
 * instance>" on stdin, validates each against the schemas of a directory and
 * prints one line per input: "valid", "invalid\t<error>", or "<error name>\t<why>"
 * when it cannot say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

/* A uri with a fragment (defs.json#/definitions/id) is validated through an
 * anonymous {"$ref": uri}; a plain one is looked up as registered. */
static int validate_one(ev_schema_set *set, const char *uri, const json_t *inst,
                        ev_error *err)
{
    if (strchr(uri, '#') == NULL)
        return ev_schema_validate(set, uri, inst, err);
    json_t *ref = json_pack("{s:s}", "$ref", uri);
    if (ref == NULL)
        return ev_error_set(err, EV_ENOMEM, "out of memory");
    int rc = ev_schema_validate_doc(set, ref, inst, err);
    json_decref(ref);
    return rc;
}

/* Prints "<verdict>\t<text>" on one line: control characters of the text
 * (it may quote the instance) become spaces. */
static void print_verdict(const char *verdict, const char *text)
{
    fputs(verdict, stdout);
    if (text != NULL) {
        putchar('\t');
        for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
            putchar(*p < 0x20 ? ' ' : *p);
    }
    putchar('\n');
}

static void run_line(ev_schema_set *set, char *line, size_t len)
{
    char *tab = memchr(line, '\t', len);
    ev_error err;
    json_error_t jerr;
    if (tab == NULL) {
        print_verdict("error", "no tab");
        return;
    }
    *tab = '\0';
    json_t *inst = json_loadb(tab + 1, len - (size_t)(tab + 1 - line),
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (inst == NULL) {
        print_verdict("error", jerr.text);
        return;
    }
    int rc = validate_one(set, line, inst, &err);
    if (rc == 0)
        print_verdict("valid", NULL);
    else
        print_verdict(rc == EV_ESCHEMA ? "invalid" : ev_error_name(rc), err.text);
    json_decref(inst);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : EV_SCHEMA_DIR;
    ev_error err;
    ev_schema_set *set = ev_schema_set_new();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 1;
    if (set == NULL || ev_schema_set_load_dir(set, dir, &err) != 0) {
        fprintf(stderr, "validate_tool: %s\n", set ? err.text : "out of memory");
        goto cleanup;
    }
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        run_line(set, line, (size_t)n);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
cleanup:
    free(line);
    ev_schema_set_free(set);
    return rc;
}

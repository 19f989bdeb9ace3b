/* SPDX-License-Identifier: MIT */
/* Internals shared by the schema validator's files (schema*.c only): the
 * compiled node, the set, the keyword tables and the calls across files. */
#ifndef EV_SCHEMA_INTERNAL_H
#define EV_SCHEMA_INTERNAL_H

#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "schema.h"

/* How deep validation may nest (subschemas plus $ref hops) before a schema is
 * declared cyclic: a {"$ref": "#"} loop must end in an error, not a crash. */
#define MAX_DEPTH 512
#define MAX_OPS 36

/* ---- growable string and pointer vector (schema.c) ---------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

void ev_sch_sb_putn(sbuf *b, const char *s, size_t n);
void ev_sch_sb_puts(sbuf *b, const char *s);
void ev_sch_sb_putc(sbuf *b, char c);
/* The built string, owned by the caller; NULL when an allocation failed. */
char *ev_sch_sb_take(sbuf *b);

typedef struct pvec {
    void **v;
    size_t n, cap;
} pvec;

int ev_sch_pv_push(pvec *a, void *x);

/* ---- registry: URI -> node and json_t* -> node (schema_refs.c) ----------- */

typedef struct snode snode;

typedef struct rentry {
    char *skey;       /* owned; NULL for a pointer key */
    const void *pkey; /* json_t* of a compiled schema */
    snode *val;
    size_t next; /* index + 1 of the next entry in the bucket, 0 ends */
} rentry;

typedef struct registry {
    rentry *e;
    size_t n, cap;
    size_t *bucket; /* index + 1 of the newest entry, 0 empty */
    size_t nb;      /* power of two */
} registry;

/* Adds an entry (skey is stolen, also on failure); it shadows older ones. */
int ev_sch_reg_put(registry *r, char *skey, const void *pkey, snode *val);
snode *ev_sch_reg_get(const registry *r, const char *skey, const void *pkey);
/* Removes the newest entry. */
void ev_sch_reg_pop(registry *r);

/* ---- compiled schema nodes ------------------------------------------------ */

typedef struct ipath {
    const struct ipath *up;
    const char *key; /* NULL: an array index */
    size_t index;
} ipath;

typedef struct vctx {
    ev_error *err;
    bool quiet; /* inside anyOf/oneOf/not/if/contains: mismatches are not reported */
    unsigned depth;
} vctx;

typedef int (*check_fn)(const snode *n, const json_t *v, const ipath *p, vctx *c);

typedef struct named {
    const char *key; /* borrowed from the schema document */
    snode *sub;
} named;

typedef struct patsub {
    regex_t re;
    snode *sub;
} patsub;

typedef struct depend {
    const char *key;
    const json_t *names; /* array form, or NULL */
    snode *sub;          /* schema form, or NULL */
} depend;

typedef struct subs {
    snode **v;
    size_t n;
} subs;

enum {
    T_NULL = 1,
    T_BOOL = 2,
    T_OBJECT = 4,
    T_ARRAY = 8,
    T_NUMBER = 16,
    T_STRING = 32,
    T_INTEGER = 64,
};

struct snode {
    const json_t *json;
    const char *base; /* base URI, owned by the set */
    int boolean;      /* -1: an object schema; 0/1: the false/true schema */
    char *ref_uri;    /* absolute $ref target, owned; NULL when no $ref */
    snode *ref;       /* resolved $ref target */
    check_fn ops[MAX_OPS];
    size_t n_ops;
    unsigned types;
    const json_t *enum_vals, *const_val;
    const json_t *multiple_of, *maximum, *exclusive_maximum, *minimum, *exclusive_minimum;
    size_t max_length, min_length, max_items, min_items, max_props, min_props;
    regex_t pattern;
    bool has_pattern, unique_items;
    const char *pattern_src, *format, *content_encoding, *content_media;
    snode *items_one;
    subs items_arr, all_of, any_of, one_of;
    snode *additional_items, *contains;
    const json_t *required;
    named *props;
    size_t n_props;
    const json_t *props_obj;
    patsub *pprops;
    size_t n_pprops;
    snode *additional_props, *property_names;
    depend *deps;
    size_t n_deps;
    snode *if_s, *then_s, *else_s, *not_s;
};

typedef struct remote {
    char *prefix, *dir;
} remote;

struct ev_schema_set {
    snode true_node, false_node;
    pvec nodes;   /* snode*, owned */
    pvec docs;    /* json_t*, one reference each */
    pvec bases;   /* char*, owned base URIs */
    pvec pending; /* snode* with a $ref not yet resolved */
    registry reg;
    remote *remotes;
    size_t n_remotes;
    bool shadow; /* inside ev_schema_validate_doc: ids may shadow older ones */
};

typedef struct mark {
    size_t nodes, docs, bases, pending, reg;
} mark;

static inline mark ev_sch_mark_take(const ev_schema_set *s)
{
    return (mark){s->nodes.n, s->docs.n, s->bases.n, s->pending.n, s->reg.n};
}

typedef struct cctx {
    ev_schema_set *s;
    ev_error *err;
    const char *kw; /* keyword being compiled, for messages */
} cctx;

/* A keyword: its compiler (off is the offset of the snode field it fills) and
 * its check (NULL when another keyword's check covers it). */
typedef struct ev_sch_keyword {
    const char *name;
    int (*compile)(cctx *cc, snode *n, json_t *v, size_t off);
    size_t off;
    check_fn check;
} ev_sch_keyword;

#define FIELD(n, off, type) ((type *)((char *)(n) + (off)))
#define OFF(field) offsetof(snode, field)

/* The keyword tables, in checking order (the order decides which failure is
 * reported first): values (schema_keywords.c), then format and content
 * (schema_formats.c),
 * then arrays, objects and combinations (schema_keywords_struct.c). */
#define EV_SCH_N_VALUE 11
#define EV_SCH_N_FORMAT 3
#define EV_SCH_N_STRUCT 22
extern const ev_sch_keyword ev_sch_kw_value[EV_SCH_N_VALUE];
extern const ev_sch_keyword ev_sch_kw_format[EV_SCH_N_FORMAT];
extern const ev_sch_keyword ev_sch_kw_struct[EV_SCH_N_STRUCT];
_Static_assert(EV_SCH_N_VALUE + EV_SCH_N_FORMAT + EV_SCH_N_STRUCT <= MAX_OPS,
               "MAX_OPS too small");

/* ---- the set's bookkeeping (schema.c) ------------------------------------- */

/* Undoes everything added since m, newest first. */
void ev_sch_rollback(ev_schema_set *s, mark m);
/* Keeps str (owned, may be NULL) for the set's lifetime; NULL on failure. */
const char *ev_sch_intern(ev_schema_set *s, char *str);
/* Registers uri (stolen) for n. Outside validate_doc a URI names one schema. */
int ev_sch_register_uri(ev_schema_set *s, char *uri, snode *n, ev_error *err);

/* ---- validation (schema.c) ------------------------------------------------ */

/* A mismatch: EV_ESCHEMA, with text unless inside a speculative branch. */
__attribute__((format(printf, 4, 5))) int
ev_sch_fail(vctx *c, const ipath *p, const char *kw, const char *fmt, ...);
/* A broken schema (unresolved $ref, endless recursion): always reported. */
__attribute__((format(printf, 5, 6))) int
ev_sch_hard(vctx *c, int code, const ipath *p, const char *kw, const char *fmt, ...);

static inline bool ev_sch_is_hard(int rc)
{
    return rc != 0 && rc != EV_ESCHEMA;
}

int ev_sch_validate_node(const snode *n, const json_t *v, const ipath *p, vctx *c);
/* Validates without reporting a mismatch (hard errors still carry text). */
int ev_sch_try_validate(const snode *n, const json_t *v, const ipath *p, vctx *c);
/* A subschema at a child location; a false subschema is blamed on kw. */
int ev_sch_validate_child(const snode *sub, const json_t *v, const ipath *p, vctx *c,
                          const char *kw);

/* ---- compilation (schema.c) ----------------------------------------------- */

int ev_sch_bad(cctx *cc, const snode *n, const char *what);
/* Compiles schema j (borrowed; the set keeps the document alive). NULL on
 * error, with cc->err filled. */
snode *ev_sch_compile_node(cctx *cc, json_t *j, const char *base);
int ev_sch_compile_sub(cctx *cc, snode *n, json_t *v, snode **out);
int ev_sch_compile_subs(cctx *cc, snode *n, json_t *v, subs *out);
/* Keyword compilers shared by several tables. */
int ev_sch_kc_count(cctx *cc, snode *n, json_t *v, size_t off);
int ev_sch_kc_any(cctx *cc, snode *n, json_t *v, size_t off);
int ev_sch_kc_schema(cctx *cc, snode *n, json_t *v, size_t off);
int ev_sch_kc_schema_list(cctx *cc, snode *n, json_t *v, size_t off);

static inline bool ev_sch_real_is_integral(double d)
{
    return isfinite(d) && d == floor(d);
}

/* Deep equality where 1 and 1.0 are the same number (schema_keywords.c). */
bool ev_sch_json_same(const json_t *a, const json_t *b);

/* ---- regular expressions (schema_regex.c) --------------------------------- */

/* Compiles an ECMA 262 pattern into re; false when unsupported. */
bool ev_sch_re_compile(regex_t *re, const char *ecma);
bool ev_sch_re_search_ok(const regex_t *re, const char *s);

/* ---- URI references and $ref resolution (schema_refs.c) ------------------- */

/* Resolves reference ref against base; a new string owned by the caller, NULL
 * on allocation failure. */
char *ev_sch_uri_resolve(const char *base, const char *ref);
/* Compiles doc under base (and alias), registering both. Undone on failure. */
int ev_sch_add_doc(ev_schema_set *s, const char *base, const char *alias, json_t *doc,
                   ev_error *err);
/* Resolves every pending $ref from index from on. */
int ev_sch_link_refs(ev_schema_set *s, size_t from, ev_error *err);
/* Resolves all pending references and forgets the resolved ones. */
int ev_sch_link_all(ev_schema_set *s, ev_error *err);

#endif

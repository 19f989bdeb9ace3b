/* SPDX-License-Identifier: MIT */
/* JSON Schema validator: regular expressions, the ECMA 262 subset the
 * keywords pattern and patternProperties use, translated to POSIX extended. */
#include <ctype.h>
#include <locale.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_internal.h"

/* ---- regular expressions: ECMA 262 subset -> POSIX extended --------------- */

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (utf8_locale == (locale_t)0)
        utf8_locale = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
}

/* Regexes are compiled and run in a UTF-8 locale so '.' and classes see code
 * points; the thread's own locale is restored afterwards. */
static locale_t utf8_enter(void)
{
    pthread_once(&utf8_once, utf8_init);
    return utf8_locale != (locale_t)0 ? uselocale(utf8_locale) : (locale_t)0;
}

static void utf8_leave(locale_t old)
{
    if (old != (locale_t)0)
        uselocale(old);
}

bool ev_sch_re_search_ok(const regex_t *re, const char *s)
{
    locale_t old = utf8_enter();
    int rc = regexec(re, s, 0, NULL, 0);
    utf8_leave(old);
    return rc == 0;
}

static void put_utf8(sbuf *o, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    ev_sch_sb_putn(o, b, n);
}

static long hex_n(const char *s, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return -1;
        v = v * 16 +
            (isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower(s[i]) - 'a' + 10));
    }
    return v;
}

/* Decodes a literal escape (\n \t \uXXXX \xHH ... or an escaped symbol) at s
 * (just after the backslash). Returns the code point, -1 when s is not one;
 * *len gets the characters consumed. */
static long re_literal_escape(const char *s, size_t *len)
{
    static const char from[] = "ntrfv", to[] = "\n\t\r\f\v";
    const char *hit = *s != '\0' ? strchr(from, *s) : NULL;
    *len = 1;
    if (hit != NULL)
        return to[hit - from];
    if (*s == 'x') {
        *len = 3;
        return hex_n(s + 1, 2);
    }
    if (*s == 'u') {
        long cp = hex_n(s + 1, 4);
        *len = 5;
        if (cp >= 0xD800 && cp < 0xDC00 && s[5] == '\\' && s[6] == 'u') {
            long lo = hex_n(s + 7, 4);
            if (lo >= 0xDC00 && lo < 0xE000) {
                *len = 11;
                return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
        }
        return cp;
    }
    if (*s != '\0' && !isalnum((unsigned char)*s))
        return (unsigned char)*s;
    return -1;
}

static void re_put_literal(sbuf *o, long cp)
{
    if (cp < 0x80 && strchr(".[]()*+?{}|^$\\", (int)cp) != NULL)
        ev_sch_sb_putc(o, '\\');
    put_utf8(o, (unsigned long)cp);
}

/* An escape outside a class; returns the input after it, NULL if unsupported. */
static const char *re_escape(const char *s, sbuf *o)
{
    static const char *const classes[][2] = {
        {"d", "[0-9]"},         {"D", "[^0-9]"},      {"w", "[A-Za-z0-9_]"},
        {"W", "[^A-Za-z0-9_]"}, {"s", "[[:space:]]"}, {"S", "[^[:space:]]"},
        {"b", "\\b"},           {"B", "\\B"},
    };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (*s == classes[i][0][0]) {
            ev_sch_sb_puts(o, classes[i][1]);
            return s + 1;
        }
    }
    if (*s >= '1' && *s <= '9') {
        ev_sch_sb_putc(o, '\\');
        ev_sch_sb_putc(o, *s);
        return s + 1;
    }
    size_t len;
    long cp = re_literal_escape(s, &len);
    if (cp <= 0)
        return NULL;
    re_put_literal(o, cp);
    return s + len;
}

typedef struct rclass {
    sbuf body;
    bool neg, rbracket, dash, caret;
} rclass;

static void class_literal(rclass *k, long cp)
{
    if (cp == ']')
        k->rbracket = true;
    else if (cp == '-')
        k->dash = true;
    else if (cp == '^')
        k->caret = true;
    else
        put_utf8(&k->body, (unsigned long)cp);
}

/* One escape inside a class; NULL if unsupported. */
static const char *class_escape(const char *s, rclass *k)
{
    static const char *const sets[][2] = {
        {"d", "0-9"}, {"w", "A-Za-z0-9_"}, {"s", "[:space:]"}};
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        if (*s == sets[i][0][0]) {
            ev_sch_sb_puts(&k->body, sets[i][1]);
            return s + 1;
        }
    }
    if (*s == 'b') {
        class_literal(k, '\b');
        return s + 1;
    }
    size_t len;
    long cp = re_literal_escape(s, &len);
    if (cp <= 0)
        return NULL;
    class_literal(k, cp);
    return s + len;
}

static void class_emit(rclass *k, sbuf *o)
{
    bool bare = !k->neg && !k->rbracket && k->body.n == 0;
    if (bare && !k->dash) {
        ev_sch_sb_puts(o, "\\^");
        return;
    }
    ev_sch_sb_putc(o, '[');
    if (k->neg)
        ev_sch_sb_putc(o, '^');
    if (bare) {
        ev_sch_sb_puts(o, k->caret ? "-^]" : "-]");
        return;
    }
    if (k->rbracket)
        ev_sch_sb_putc(o, ']');
    if (k->body.p != NULL)
        ev_sch_sb_putn(o, k->body.p, k->body.n);
    if (k->caret)
        ev_sch_sb_putc(o, '^');
    if (k->dash)
        ev_sch_sb_putc(o, '-');
    ev_sch_sb_putc(o, ']');
}

/* A bracket class starting after '['; returns the input after ']' or NULL. */
static const char *re_class(const char *s, sbuf *o)
{
    rclass k = {0};
    if (*s == '^') {
        k.neg = true;
        s++;
    }
    const char *first = s;
    while (s != NULL && *s != '\0' && *s != ']') {
        if (*s == '\\') {
            s = class_escape(s + 1, &k);
        } else if (*s == '-' && (s == first || s[1] == ']')) {
            k.dash = true;
            s++;
        } else if (*s == '^') {
            k.caret = true;
            s++;
        } else if (*s == '[' && (s[1] == ':' || s[1] == '.' || s[1] == '=')) {
            s = NULL;
        } else {
            ev_sch_sb_putc(&k.body, *s++);
        }
    }
    bool empty = k.body.n == 0 && !k.rbracket && !k.dash && !k.caret;
    if (s == NULL || *s != ']' || empty || k.body.oom) {
        free(k.body.p);
        return NULL;
    }
    class_emit(&k, o);
    free(k.body.p);
    return s + 1;
}

/* Length of a {n}, {n,} or {n,m} quantifier at s, 0 when it is not one. */
static size_t quantifier_len(const char *s)
{
    size_t i = 1;
    if (!isdigit((unsigned char)s[i]))
        return 0;
    while (isdigit((unsigned char)s[i]))
        i++;
    if (s[i] == ',') {
        i++;
        while (isdigit((unsigned char)s[i]))
            i++;
    }
    return s[i] == '}' ? i + 1 : 0;
}

/* One atom (or anchor) at s into o; returns the input after it, NULL
 * if unsupported. */
static const char *re_atom(const char *s, sbuf *o)
{
    switch (*s) {
    case '\\':
        return re_escape(s + 1, o);
    case '[':
        return re_class(s + 1, o);
    case '{':
        ev_sch_sb_puts(o, "\\{");
        return s + 1;
    case '}':
        ev_sch_sb_puts(o, "\\}");
        return s + 1;
    case '.':
        ev_sch_sb_puts(o, "[^\n\r]");
        return s + 1;
    default:
        ev_sch_sb_putc(o, *s);
        return s + 1;
    }
}

/* What regcomp makes of a quantifier (at s: {n} {n,} {n,m} * + ?): copies of
 * the atom (one per repetition; *, + and ? counted as 2), whether the result
 * matches empty, whether it loops (repeats more than once). */
typedef struct re_quant {
    double copies;
    bool min0, loops;
} re_quant;

static re_quant quantifier_of(const char *s)
{
    if (*s != '{')
        return (re_quant){2, *s != '+', *s != '?'};
    char *end;
    double lo = strtod(s + 1, &end), hi = lo;
    bool open = end[0] == ',' && !isdigit((unsigned char)end[1]);
    if (end[0] == ',')
        hi = open ? lo + 1 : strtod(end + 1, NULL);
    return (re_quant){hi > 1 ? hi : 1, lo == 0, hi > 1 || open};
}

/* regcomp's work, estimated while translating; over a limit the pattern is
 * refused (unsupported) rather than left to take minutes and gigabytes. It
 * copies a repeated atom once per repetition: nested counted repetitions
 * ((a{1000}){1000}){1000} make RE_MAX_NODES nodes. Its memory grows with the
 * square of the nodes that can match empty ((a?){5000}: 400 MB), and its time
 * doubles with each loop over what can match empty ((a*)* or (a?)+: twenty
 * take a second). */
#define RE_MAX_NODES 100000.0
#define RE_MAX_EMPTY 4000.0
#define RE_MAX_LOOPS 16.0
#define RE_MAX_NEST 64

typedef struct re_size {
    double nodes, empty, loops; /* nodes, nodes that can match empty, loops over such */
} re_size;

typedef struct re_frame { /* one open group */
    re_size all, last; /* the group so far; its last atom (what a quantifier repeats) */
    bool alt_empty;    /* an earlier alternative matches empty */
    bool seq_empty;    /* this alternative before the last atom does */
    bool last_empty;   /* the last atom does */
} re_frame;

typedef struct re_cost {
    re_frame f[RE_MAX_NEST + 1];
    int depth;
} re_cost;

static const re_frame frame_start = {.seq_empty = true, .last_empty = true};

static bool cost_ok(re_size s)
{
    return s.nodes <= RE_MAX_NODES && s.empty <= RE_MAX_EMPTY && s.loops <= RE_MAX_LOOPS;
}

/* Makes the last atom of f a, which matches empty or not. */
static bool cost_set_last(re_frame *f, re_size a, bool empty)
{
    if (empty)
        a.empty = a.nodes;
    f->all.nodes += a.nodes - f->last.nodes;
    f->all.empty += a.empty - f->last.empty;
    f->all.loops += a.loops - f->last.loops;
    f->last = a;
    f->last_empty = empty;
    return cost_ok(f->all);
}

static bool cost_atom(re_cost *c, re_size a, bool empty)
{
    re_frame *f = &c->f[c->depth];
    f->seq_empty = f->seq_empty && f->last_empty;
    f->last = (re_size){0, 0, 0};
    return cost_set_last(f, a, empty);
}

static bool cost_repeat(re_cost *c, re_quant q)
{
    re_frame *f = &c->f[c->depth];
    re_size a = {f->last.nodes * q.copies, f->last.empty * q.copies,
                 f->last.loops * q.copies + (f->last_empty && q.loops ? 1 : 0)};
    return cost_set_last(f, a, f->last_empty || q.min0);
}

/* '(' opens a group, ')' closes one into an atom, '|' starts an alternative. */
static bool cost_group(re_cost *c, char ch)
{
    re_frame *f = &c->f[c->depth];
    bool empty = f->alt_empty || (f->seq_empty && f->last_empty);
    if (ch == '(') {
        if (c->depth == RE_MAX_NEST)
            return false;
        c->f[++c->depth] = frame_start;
        return true;
    }
    if (ch == '|') {
        re_size all = {f->all.nodes + 1, f->all.empty, f->all.loops};
        *f = frame_start;
        f->all = all;
        f->alt_empty = empty;
        return cost_ok(all);
    }
    if (c->depth == 0) /* unbalanced: regcomp says so */
        return cost_atom(c, (re_size){1, 0, 0}, false);
    c->depth--;
    return cost_atom(c, (re_size){f->all.nodes + 2, f->all.empty, f->all.loops}, empty);
}

/* True when the atom at s matches the empty string: anchors, \b, \B and
 * back-references (which may). */
static bool atom_empty(const char *s)
{
    return *s == '^' || *s == '$' ||
           (*s == '\\' && s[1] != '\0' && strchr("bB123456789", s[1]));
}

/* Translates an ECMA 262 pattern to POSIX ERE: \d \w \s (and negations),
 * escapes, classes, (?:), lazy quantifiers (same match/no-match answer).
 * Lookaround, a quantifier of a quantifier (a** is not ECMA) and other
 * constructs without an ERE form fail with -1, as do patterns too big. */
static int re_translate(const char *s, sbuf *o)
{
    re_cost cost = {.f[0] = frame_start};
    bool ok = true, after_quant = false, lazy_ok = false;
    while (ok && s != NULL && *s != '\0') {
        char ch = *s;
        size_t qn = ch == '{' ? quantifier_len(s) : 0;
        bool quant = ch == '*' || ch == '+' || ch == '?' || qn > 0;
        if (quant && after_quant) {
            if (ch != '?' || !lazy_ok)
                return -1;
            lazy_ok = false;
            s++;
            continue;
        }
        if (quant) {
            ok = cost_repeat(&cost, quantifier_of(s));
            ev_sch_sb_putn(o, s, qn ? qn : 1);
            s += qn ? qn : 1;
        } else if (ch == '(' || ch == ')' || ch == '|') {
            if (ch == '(' && s[1] == '?' && s[2] != ':')
                return -1;
            ok = cost_group(&cost, ch);
            ev_sch_sb_putc(o, ch);
            s += ch == '(' && s[1] == '?' ? 3 : 1;
        } else {
            ok = cost_atom(&cost, (re_size){1, 0, 0}, atom_empty(s));
            s = re_atom(s, o);
        }
        after_quant = lazy_ok = quant;
    }
    return !ok || s == NULL || o->oom ? -1 : 0;
}

/* Compiles an ECMA pattern into re; false when unsupported. */
bool ev_sch_re_compile(regex_t *re, const char *ecma)
{
    sbuf ere = {0};
    if (re_translate(ecma, &ere) != 0 || ere.oom) {
        free(ere.p);
        return false;
    }
    locale_t old = utf8_enter();
    int rc = regcomp(re, ere.p != NULL ? ere.p : "", REG_EXTENDED | REG_NOSUB);
    utf8_leave(old);
    free(ere.p);
    return rc == 0;
}

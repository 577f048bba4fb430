/*
 * The kdump fast path: frame the common line shapes of kdump(1) output in C.
 *
 *      755 uul      CALL  chdir(0x60022c)
 *      755 uul      RET   chdir -1 errno 2 No such file or directory
 *      755 uul      NAMI  "/system"
 *      755 uul      GIO   fd 1 wrote 4 bytes
 *          "BSD                                  (a data line of the GIO record above)
 *
 * It gives, field for field, what parse/_kdump.py's regular expressions give (HEADER_RE, then
 * _FAST_CALL, _FAST_RET, _FAST_GIO, _FAST_QUOTED, the text body of STRU/CAP/PFLT/PRET/PSIG,
 * _FAST_DUMP for data lines, and "prose" for a line with no record header), and what
 * grammars/kdump.lark (the parser of record) gives for CSW, USER and the info records (OpenBSD
 * ARGS/ENV/PLDG/PINS/STRT, NetBSD MISC/MIB/ARG/ENV/FD/SAU, UNKNOWN(n)): tests/test_parse_kdump_differential.py runs
 * the C, the regular expressions and Lark over every line of the test corpus and compares them.
 *
 * Each regular expression is followed in the order Python's backtracking engine tries it: the
 * record header's command name is the shortest (1 to 32 characters, first and last not blank)
 * after which timestamps, cpu and a record type follow, tried first with a "pid:tid"/"pid/tid"
 * thread id, then "pid tid", then none. The C only takes lines of printable ASCII and TAB, where
 * Python's \d, \S and [^\n] are plain byte classes; every other line (UTF-8, control bytes, a
 * pid of more than 18 digits, a timestamp of more than 9 digits of seconds, an errno of more than 9
 * characters: Python checks their range) goes back to Python, as does every header line whose body is not
 * one of the shapes above (Lark decides those).
 *
 * Output, for Polars' CSV reader: one line per framed line, fields separated by 0x1f:
 *   line_no rtype pid tid comm stamps name text sep
 * (stamps joined by one space; sep is the code of the character after the pid when there is a
 * thread id: ':' '/' or ' '; a RET's return value, errno and message are read back from its text,
 * built as the grammar's transformer builds it). rtype BAD is a line without a header or data-line
 * shape (prose); DUMP and BAD rows have the whole line as their text. A second buffer holds "line_no 0x1f text" for every line
 * left to Python. Built at first use with the system C compiler (parse/_native.py); C99, no
 * Python API, so ctypes releases the GIL and chunks frame in parallel threads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *framed;
    size_t framed_len;
    char *other;
    size_t other_len;
    int64_t lines;      /* lines seen */
    int64_t blank;      /* lines of only spaces and tabs (ignorable) */
} sp_kdump_result;

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_put(buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_int(buf_t *b, int64_t v) {
    char rev[24];
    int n = 0;
    if (v == 0) rev[n++] = '0';
    while (v > 0) { rev[n++] = (char)('0' + v % 10); v /= 10; }
    char tmp[24];
    for (int i = 0; i < n; i++) tmp[i] = rev[n - 1 - i];
    return buf_put(b, tmp, (size_t)n);
}

typedef struct { const char *s; size_t n; } span;   /* s == NULL: absent (an empty field) */

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
/* \S on printable ASCII and TAB */
static inline int is_solid(char c) { return c > ' ' && c < 0x7f; }
static inline int is_name_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static inline int is_name(char c) { return is_name_start(c) || is_digit(c) || c == '.'; }

static size_t skip_spaces(const char *l, size_t i, size_t n) {
    while (i < n && l[i] == ' ') i++;
    return i;
}

static size_t skip_digits(const char *l, size_t i, size_t n) {
    while (i < n && is_digit(l[i])) i++;
    return i;
}

/* A decimal of 1..18 digits (longer ones go to Python, whose int() has no limit). */
static int small_int(const char *s, size_t n, int64_t *v) {
    if (n == 0 || n > 18) return 0;
    int64_t x = 0;
    for (size_t k = 0; k < n; k++) x = x * 10 + (s[k] - '0');
    *v = x;
    return 1;
}

static const char *const TYPES[] = {
    "CALL", "RET", "NAMI", "GIO", "PSIG", "CSW", "SCTL", "STRU", "USER", "CAP", "PFLT", "PRET",
    "EMUL", "ARGS", "ENV", "PLDG", "PINS", "STRT", "MISC", "MIB", "EXEC", "FD", "ARG", "SAU", "XPND",
};

/* The record type at l[i:]: one of TYPES or UNKNOWN(\d+), then a space or the end (?= |$).
 * Returns its end, or 0. */
static size_t match_type(const char *l, size_t i, size_t n) {
    size_t w = i;
    while (w < n && l[w] != ' ') w++;
    size_t len = w - i;
    for (size_t t = 0; t < sizeof TYPES / sizeof TYPES[0]; t++)
        if (strlen(TYPES[t]) == len && memcmp(l + i, TYPES[t], len) == 0) return w;
    if (len > 9 && memcmp(l + i, "UNKNOWN(", 8) == 0 && l[w - 1] == ')') {
        size_t d = skip_digits(l, i + 8, n);
        if (d > i + 8 && d == w - 1) return w;
    }
    return 0;
}

typedef struct {
    span pid, tid, comm, type;
    span stamps[3];
    int nstamps;
    int wide_stamp;      /* a stamp with more than 9 digits of seconds (Python checks its range) */
    char sep;
    size_t body;         /* start of the body (after the type and its spaces) */
} header_t;

/* After the command name: " +(?:-?\d+\.\d+ +){0,3}(?:\d+ +)?TYPE(?= |$)". Each part takes as much
 * as it can and giving any back cannot help (see the file comment), so one pass decides. */
static int header_rest(const char *l, size_t i, size_t n, header_t *h) {
    size_t k = skip_spaces(l, i, n);
    if (k == i) return 0;
    h->nstamps = 0;
    h->wide_stamp = 0;
    while (h->nstamps < 3) {
        size_t s = k;
        if (s < n && l[s] == '-') s++;
        size_t d = skip_digits(l, s, n);
        if (d == s || d >= n || l[d] != '.') break;
        size_t f = skip_digits(l, d + 1, n);
        if (f == d + 1) break;
        size_t e = skip_spaces(l, f, n);
        if (e == f) break;
        if (d - s > 9) h->wide_stamp = 1;
        h->stamps[h->nstamps].s = l + k;
        h->stamps[h->nstamps].n = f - k;
        h->nstamps++;
        k = e;
    }
    size_t d = skip_digits(l, k, n);          /* -c: the cpu */
    if (d > k) {
        size_t e = skip_spaces(l, d, n);
        if (e > d) k = e;
    }
    size_t t = match_type(l, k, n);
    if (!t) return 0;
    h->type.s = l + k;
    h->type.n = t - k;
    h->body = skip_spaces(l, t, n);
    return 1;
}

/* HEADER_RE: " *(\d+)(?:[:/](\d+)| +(\d+)(?= ))? +(\S(?:[^\n]{0,30}?\S)??) +" then header_rest. */
static int match_header(const char *l, size_t n, header_t *h) {
    memset(h, 0, sizeof *h);
    size_t i = skip_spaces(l, 0, n);
    size_t p = skip_digits(l, i, n);
    if (p == i) return 0;
    h->pid.s = l + i;
    h->pid.n = p - i;
    for (int alt = 0; alt < 3; alt++) {
        size_t j = p;
        h->tid.s = NULL;
        h->tid.n = 0;
        if (alt == 0) {                        /* [:/](\d+) */
            if (j >= n || (l[j] != ':' && l[j] != '/')) continue;
            size_t d = skip_digits(l, j + 1, n);
            if (d == j + 1) continue;
            h->tid.s = l + j + 1;
            h->tid.n = d - j - 1;
            h->sep = l[j];
            j = d;
        } else if (alt == 1) {                 /* " +(\d+)(?= )" */
            size_t s = skip_spaces(l, j, n);
            if (s == j) continue;
            size_t d = skip_digits(l, s, n);
            if (d == s || d >= n || l[d] != ' ') continue;
            h->tid.s = l + s;
            h->tid.n = d - s;
            h->sep = ' ';
            j = d;
        }
        size_t c = skip_spaces(l, j, n);
        if (c == j || c >= n || !is_solid(l[c])) continue;
        for (size_t len = 1; len <= 32 && c + len <= n; len++) {   /* the lazy command name */
            if (len > 1 && !is_solid(l[c + len - 1])) continue;
            if (header_rest(l, c + len, n, h)) {
                h->comm.s = l + c;
                h->comm.n = len;
                return 1;
            }
        }
    }
    return 0;
}

/* NUM: -?(?:0x[0-9a-fA-F]+|\d+); returns its end, or 0. */
static size_t match_num(const char *l, size_t i, size_t n) {
    size_t s = i;
    if (s < n && l[s] == '-') s++;
    if (s + 2 < n && l[s] == '0' && l[s + 1] == 'x' && is_hex(l[s + 2])) {
        size_t e = s + 2;
        while (e < n && is_hex(l[e])) e++;
        return e;
    }
    size_t e = skip_digits(l, s, n);
    return e > s ? e : 0;
}

/* The syscall name: \[\d+\] | [A-Za-z_][A-Za-z0-9_.]*; returns its end, or 0. */
static size_t match_name(const char *l, size_t i, size_t n) {
    if (i < n && l[i] == '[') {
        size_t d = skip_digits(l, i + 1, n);
        if (d == i + 1 || d >= n || l[d] != ']') return 0;
        return d + 1;
    }
    if (i >= n || !is_name_start(l[i])) return 0;
    size_t e = i + 1;
    while (e < n && is_name(l[e])) e++;
    return e;
}

static inline int only_spaces(const char *l, size_t i, size_t n) { return skip_spaces(l, i, n) == n; }

typedef struct {
    span name, text, ret, err, msg;   /* text may point into the scratch buffer (rebuilt text) */
} body_t;

/* _FAST_CALL: (?:\(via syscall\) +)?NAME *(\([^\n]*\))? *$ */
static int body_call(const char *l, size_t b, size_t n, body_t *o) {
    static const char via[] = "(via syscall)";
    size_t vn = sizeof via - 1;
    if (n - b > vn && memcmp(l + b, via, vn) == 0 && l[b + vn] == ' ') b = skip_spaces(l, b + vn, n);
    size_t e = match_name(l, b, n);
    if (!e) return 0;
    o->name.s = l + b;
    o->name.n = e - b;
    size_t q = skip_spaces(l, e, n);
    if (q == n) return 1;                      /* no arguments: text absent */
    if (l[q] != '(') return 0;
    size_t z = n;
    while (z > q && l[z - 1] == ' ') z--;
    if (z - 1 <= q || l[z - 1] != ')') return 0;
    o->text.s = l + q;
    o->text.n = z - q;
    return 1;
}

/* _FAST_RET: NAME +(?:NUM(?: * / *NUM)?|NUM +errno +NUM(?: +TEXT)?|(JUSTRETURN|RESTART)) *$
 * (the slash has blanks around it here only to keep this comment open)
 * Writes text into buf when it must be rebuilt ("v1/v2", "e1 errno e2 msg"). */
static int body_ret(const char *l, size_t b, size_t n, body_t *o, buf_t *scratch) {
    size_t e = match_name(l, b, n);
    if (!e) return 0;
    size_t v = skip_spaces(l, e, n);
    if (v == e) return 0;
    o->name.s = l + b;
    o->name.n = e - b;
    size_t v1 = match_num(l, v, n);
    if (v1) {
        o->ret.s = l + v;
        o->ret.n = v1 - v;
        if (only_spaces(l, v1, n)) {          /* NUM */
            o->text = o->ret;
            return 1;
        }
        size_t s = skip_spaces(l, v1, n);
        if (s < n && l[s] == '/') {            /* NUM / NUM */
            size_t w = skip_spaces(l, s + 1, n);
            size_t v2 = match_num(l, w, n);
            if (!v2 || !only_spaces(l, v2, n)) return 0;
            scratch->len = 0;
            if (buf_put(scratch, l + v, v1 - v) || buf_put(scratch, "/", 1) || buf_put(scratch, l + w, v2 - w))
                return -1;
            o->text.s = scratch->p;
            o->text.n = scratch->len;
            return 1;
        }
        if (s == v1 || n - s < 5 || memcmp(l + s, "errno", 5) != 0) return 0;
        size_t w = skip_spaces(l, s + 5, n);
        if (w == s + 5) return 0;
        size_t e2 = match_num(l, w, n);
        if (!e2) return 0;
        o->err.s = l + w;
        o->err.n = e2 - w;
        size_t m = skip_spaces(l, e2, n);
        if (m < n) {
            if (m == e2) return 0;
            o->msg.s = l + m;
            o->msg.n = n - m;
        }
        scratch->len = 0;
        if (buf_put(scratch, l + v, v1 - v) || buf_put(scratch, " errno ", 7) || buf_put(scratch, l + w, e2 - w))
            return -1;
        if (o->msg.s && (buf_put(scratch, " ", 1) || buf_put(scratch, o->msg.s, o->msg.n))) return -1;
        o->text.s = scratch->p;
        o->text.n = scratch->len;
        return 1;
    }
    static const char *const words[] = {"JUSTRETURN", "RESTART"};
    for (int k = 0; k < 2; k++) {
        size_t wn = strlen(words[k]);
        if (n - v >= wn && memcmp(l + v, words[k], wn) == 0 && only_spaces(l, v + wn, n)) {
            o->ret.s = o->text.s = l + v;
            o->ret.n = o->text.n = wn;
            return 1;
        }
    }
    return 0;
}

/* _FAST_GIO: fd +NUM +(read|wrote) +NUM +(bytes|byte) *$  -> "fd N dir N unit" */
static int body_gio(const char *l, size_t b, size_t n, body_t *o, buf_t *scratch) {
    if (n - b < 2 || memcmp(l + b, "fd", 2) != 0) return 0;
    size_t i = skip_spaces(l, b + 2, n);
    if (i == b + 2) return 0;
    size_t fd = match_num(l, i, n);
    if (!fd) return 0;
    size_t d = skip_spaces(l, fd, n);
    if (d == fd) return 0;
    size_t dn;
    if (n - d >= 4 && memcmp(l + d, "read", 4) == 0) dn = 4;
    else if (n - d >= 5 && memcmp(l + d, "wrote", 5) == 0) dn = 5;
    else return 0;
    size_t c = skip_spaces(l, d + dn, n);
    if (c == d + dn) return 0;
    size_t cnt = match_num(l, c, n);
    if (!cnt) return 0;
    size_t u = skip_spaces(l, cnt, n);
    if (u == cnt) return 0;
    size_t un;
    if (n - u >= 5 && memcmp(l + u, "bytes", 5) == 0 && only_spaces(l, u + 5, n)) un = 5;
    else if (n - u >= 4 && memcmp(l + u, "byte", 4) == 0 && only_spaces(l, u + 4, n)) un = 4;
    else return 0;
    scratch->len = 0;
    if (buf_put(scratch, "fd ", 3) || buf_put(scratch, l + i, fd - i) || buf_put(scratch, " ", 1) ||
        buf_put(scratch, l + d, dn) || buf_put(scratch, " ", 1) || buf_put(scratch, l + c, cnt - c) ||
        buf_put(scratch, " ", 1) || buf_put(scratch, l + u, un))
        return -1;
    o->text.s = scratch->p;
    o->text.n = scratch->len;
    return 1;
}

/* CSW: (stop|resume) (user|kernel), then TEXT? -> the two joined by one space (the grammar's
 * CSW_WHAT then TEXT after its ignored spaces). */
static int body_csw(const char *l, size_t b, size_t n, body_t *o, buf_t *scratch) {
    size_t w;
    if (n - b >= 4 && memcmp(l + b, "stop", 4) == 0) w = b + 4;
    else if (n - b >= 6 && memcmp(l + b, "resume", 6) == 0) w = b + 6;
    else return 0;
    if (w >= n || l[w] != ' ') return 0;
    w++;
    size_t e;
    if (n - w >= 4 && memcmp(l + w, "user", 4) == 0) e = w + 4;
    else if (n - w >= 6 && memcmp(l + w, "kernel", 6) == 0) e = w + 6;
    else return 0;
    size_t t = skip_spaces(l, e, n);
    scratch->len = 0;
    if (buf_put(scratch, l + b, e - b)) return -1;
    if (t < n && (buf_put(scratch, " ", 1) || buf_put(scratch, l + t, n - t))) return -1;
    o->text.s = scratch->p;
    o->text.n = scratch->len;
    return 1;
}

static int put_field(buf_t *b, span s) {
    if (buf_put(b, "\x1f", 1)) return -1;
    return s.s ? buf_put(b, s.s, s.n) : 0;
}

static int put_int_field(buf_t *b, int present, int64_t v) {
    if (buf_put(b, "\x1f", 1)) return -1;
    return present ? buf_int(b, v) : 0;
}

static int type_is(span t, const char *name) { return t.n == strlen(name) && memcmp(t.s, name, t.n) == 0; }

/* _FAST_DUMP: " *(\"[^\n]*|\t[^\n]*|0x[0-9a-fA-F]{4,} [^\n]*|\[\d+\] = [^\n]*)$"; start of the
 * data text, or (size_t)-1. */
static size_t match_dump(const char *l, size_t n) {
    size_t i = skip_spaces(l, 0, n);
    if (i >= n) return (size_t)-1;
    if (l[i] == '"' || l[i] == '\t') return i;
    if (n - i > 2 && l[i] == '0' && l[i + 1] == 'x') {
        size_t e = i + 2;
        while (e < n && is_hex(l[e])) e++;
        if (e - i - 2 >= 4 && e < n && l[e] == ' ') return i;
        return (size_t)-1;
    }
    if (l[i] == '[') {
        size_t d = skip_digits(l, i + 1, n);
        if (d > i + 1 && n - d >= 4 && memcmp(l + d, "] = ", 4) == 0) return i;
    }
    return (size_t)-1;
}

/* Frame one line. 1: framed into out, 0: left to Python, -1: out of memory. */
static int frame_line(const char *l, size_t n, int64_t line_no, buf_t *out, buf_t *scratch) {
    for (size_t k = 0; k < n; k++)             /* printable ASCII and TAB only (see above) */
        if (((unsigned char)l[k] < 0x20 && l[k] != '\t') || (unsigned char)l[k] >= 0x7f) return 0;
    static const span none = {0};
    span whole = {l, n};
    header_t h;
    if (!match_header(l, n, &h)) {             /* a data line or prose: the whole line is its text */
        const char *rtype = match_dump(l, n) == (size_t)-1 ? "BAD" : "DUMP";
        if (buf_int(out, line_no) || buf_put(out, "\x1f", 1) || buf_put(out, rtype, strlen(rtype)) ||
            put_field(out, none) || put_field(out, none) || put_field(out, none) || put_field(out, none) ||
            put_field(out, none) || put_field(out, whole) || put_field(out, none) || buf_put(out, "\n", 1))
            return -1;
        return 1;
    }
    int64_t pid, tid = 0;
    if (!small_int(h.pid.s, h.pid.n, &pid)) return 0;
    if (h.tid.s && !small_int(h.tid.s, h.tid.n, &tid)) return 0;
    body_t o;
    memset(&o, 0, sizeof o);
    size_t b = h.body;
    int r;
    if (type_is(h.type, "CALL")) {
        r = body_call(l, b, n, &o);
    } else if (type_is(h.type, "RET")) {
        r = body_ret(l, b, n, &o, scratch);
    } else if (type_is(h.type, "NAMI") || type_is(h.type, "SCTL") || type_is(h.type, "EMUL")) {
        r = n - b >= 2 && l[b] == '"' && l[n - 1] == '"';
        o.text.s = l + b;
        o.text.n = n - b;
    } else if (type_is(h.type, "GIO")) {
        r = body_gio(l, b, n, &o, scratch);
    } else if (type_is(h.type, "STRU") || type_is(h.type, "CAP") || type_is(h.type, "PFLT") ||
               type_is(h.type, "PRET") || type_is(h.type, "PSIG")) {
        r = b < n;
        o.text.s = l + b;
        o.text.n = n - b;
    } else if (type_is(h.type, "CSW")) {
        r = body_csw(l, b, n, &o, scratch);
    } else {                                   /* USER, and the info types: TEXT? */
        r = 1;
        if (b < n) {
            o.text.s = l + b;
            o.text.n = n - b;
        }
    }
    if (r <= 0) return r;
    /* numbers that may not fit the output columns: Python checks them (read_records) */
    if (h.wide_stamp || (o.err.s && o.err.n > 9)) return 0;
    if (buf_int(out, line_no) || put_field(out, h.type) || put_int_field(out, 1, pid) ||
        put_int_field(out, h.tid.s != NULL, tid) || put_field(out, h.comm) || buf_put(out, "\x1f", 1))
        return -1;
    for (int k = 0; k < h.nstamps; k++)
        if ((k && buf_put(out, " ", 1)) || buf_put(out, h.stamps[k].s, h.stamps[k].n)) return -1;
    if (put_field(out, o.name) || put_field(out, o.text) || put_int_field(out, h.tid.s != NULL, h.sep) ||
        buf_put(out, "\n", 1))
        return -1;
    return 1;
}

/* Frame buf[0:len) (whole lines; the last may lack its newline). 0 on success, -1 out of memory. */
int sp_kdump_frame(const char *buf, size_t len, int64_t first_line_no, sp_kdump_result *res) {
    buf_t framed = {0}, other = {0}, scratch = {0};
    framed.cap = len + len / 4 + 4096;         /* about the input's size: size it once */
    framed.p = malloc(framed.cap);
    if (!framed.p) return -1;
    int64_t line_no = first_line_no, lines = 0, blank = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t n = end - pos;
        const char *l = buf + pos;
        if (n > 0 && l[n - 1] == '\r') n--;
        lines++;
        size_t k = 0;
        while (k < n && (l[k] == ' ' || l[k] == '\t')) k++;
        if (k == n) {
            blank++;
        } else {
            int r = frame_line(l, n, line_no, &framed, &scratch);
            if (r < 0) goto oom;
            if (r == 0) {
                if (buf_int(&other, line_no) || buf_put(&other, "\x1f", 1) || buf_put(&other, l, n) ||
                    buf_put(&other, "\n", 1))
                    goto oom;
            }
        }
        line_no++;
        pos = end + 1;
    }
    free(scratch.p);
    res->framed = framed.p;
    res->framed_len = framed.len;
    res->other = other.p;
    res->other_len = other.len;
    res->lines = lines;
    res->blank = blank;
    return 0;
oom:
    free(framed.p);
    free(other.p);
    free(scratch.p);
    return -1;
}

void sp_kdump_free(sp_kdump_result *res) {
    free(res->framed);
    free(res->other);
    res->framed = res->other = NULL;
}

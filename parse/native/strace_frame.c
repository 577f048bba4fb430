/*
 * The strace fast path: frame the three common line shapes of strace(1) output in C.
 *
 *   PREFIX NAME(ARGS) = RESULT          a complete call
 *   PREFIX NAME(ARGS <unfinished ...>   a call another thread's line cut short
 *   PREFIX <... NAME resumed>ARGS) = RESULT
 *
 * It follows parse/grammars/strace.lark token by token (the grammar is the parser of record):
 * the same terminals (PID, PID_BRACKET, TIMESTAMP, NAME, STRING, CHUNK, UNFINISHED, RESUMED,
 * RETVAL, ERRNAME, DURATION, UNAVAILABLE), the same skipped blanks ([ \t]+) between tokens,
 * the same balanced parentheses and string escapes inside the arguments. Any line it is not
 * sure of goes back to Python, which hands it to Lark; tests/test_parse_strace_differential.py
 * checks that both give the same record for every line of the test corpus.
 *
 * Output, for Polars' CSV reader: one framed line per output line, fields separated by 0x1f:
 *   line_no rec pid ts name args ret_raw retval errname dur
 * and, in a second buffer, "line_no 0x1f text" for every line left to Python.
 * Built at first use with the system C compiler (parse/_native.py); plain C99, no Python API.
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
    int64_t blank;      /* lines with only blanks (ignorable) */
} sp_frame_result;

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
    char tmp[24];
    int n = 0;
    char rev[24];
    if (v == 0) rev[n++] = '0';
    while (v > 0) { rev[n++] = (char)('0' + v % 10); v /= 10; }
    for (int i = 0; i < n; i++) tmp[i] = rev[n - 1 - i];
    return buf_put(b, tmp, (size_t)n);
}

typedef struct { const char *s; size_t n; } span;   /* n == 0 with s == NULL: absent */

static inline int is_blank(char c) { return c == ' ' || c == '\t'; }
static inline int is_digit(char c) { return c >= '0' && c <= '9'; }
static inline int is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static inline int is_name_start(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }
static inline int is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_'; }

static size_t skip_blank(const char *l, size_t i, size_t n) {
    while (i < n && is_blank(l[i])) i++;
    return i;
}

/* TIMESTAMP: \d\d:\d\d:\d\d(\.\d+)? | \d+\.\d+ ; returns the end, or 0 if none. */
static size_t match_timestamp(const char *l, size_t i, size_t n) {
    if (i + 8 <= n && is_digit(l[i]) && is_digit(l[i + 1]) && l[i + 2] == ':' && is_digit(l[i + 3]) &&
        is_digit(l[i + 4]) && l[i + 5] == ':' && is_digit(l[i + 6]) && is_digit(l[i + 7])) {
        size_t j = i + 8;
        if (j + 1 < n && l[j] == '.' && is_digit(l[j + 1])) {
            j++;
            while (j < n && is_digit(l[j])) j++;
        }
        return j;
    }
    size_t j = i;
    while (j < n && is_digit(l[j])) j++;
    if (j == i || j + 1 >= n || l[j] != '.' || !is_digit(l[j + 1])) return 0;
    j++;
    while (j < n && is_digit(l[j])) j++;
    return j;
}

/* "<unfinished ...>" followed by blanks to the end of the line (the UNFINISHED terminal). */
static int unfinished_at(const char *l, size_t i, size_t n) {
    static const char mark[] = "<unfinished ...>";
    size_t m = sizeof mark - 1;
    if (i + m > n || memcmp(l + i, mark, m) != 0) return 0;
    return skip_blank(l, i + m, n) == n;
}

/* ARGS: (STRING | CHUNK | "(" ARGS ")")* up to the ")" that closes depth 0, or UNFINISHED at
 * depth 0. Returns the index of that ")" / "<", sets *unfinished; (size_t)-1 when neither. */
static size_t scan_args(const char *l, size_t i, size_t n, int *unfinished) {
    int depth = 0;
    *unfinished = 0;
    while (i < n) {
        char c = l[i];
        if (c == '"') {                       /* STRING: "(?:[^"\\\n]|\\.)*"(\.\.\.)? */
            i++;
            while (i < n && l[i] != '"') {
                if (l[i] == '\\') {
                    if (i + 1 >= n) return (size_t)-1;
                    i += 2;
                } else {
                    i++;
                }
            }
            if (i >= n) return (size_t)-1;    /* unterminated string: Lark decides */
            i++;
            if (i + 3 <= n && l[i] == '.' && l[i + 1] == '.' && l[i + 2] == '.') i += 3;
        } else if (c == '(') {
            depth++;
            i++;
        } else if (c == ')') {
            if (depth == 0) return i;
            depth--;
            i++;
        } else if (c == '<' && unfinished_at(l, i, n)) {
            if (depth != 0) return (size_t)-1;
            *unfinished = 1;
            return i;
        } else {
            i++;
        }
    }
    return (size_t)-1;
}

typedef struct { span ret_raw, retval, errname, dur; } result_t;

/* RESULT after the closing ")": "=" RETVAL ERRNAME? ("(" ARGS ")")? (DURATION | UNAVAILABLE)? EOL */
static int scan_result(const char *l, size_t i, size_t n, result_t *r) {
    memset(r, 0, sizeof *r);
    i = skip_blank(l, i, n);
    if (i >= n || l[i] != '=') return 0;
    i = skip_blank(l, i + 1, n);
    size_t start = i, j = i;
    /* RETVAL: (?:0x[0-9a-fA-F]+|-?\d+|\?) then an optional <...> decoration */
    if (j + 2 < n && l[j] == '0' && l[j + 1] == 'x' && is_hex(l[j + 2])) {
        j += 2;
        while (j < n && is_hex(l[j])) j++;
    } else if (j < n && (is_digit(l[j]) || (l[j] == '-' && j + 1 < n && is_digit(l[j + 1])))) {
        j++;
        while (j < n && is_digit(l[j])) j++;
    } else if (j < n && l[j] == '?') {
        j++;
    } else {
        return 0;
    }
    r->retval.s = l + start;
    r->retval.n = j - start;
    if (j < n && l[j] == '<') {               /* <(?:->|[^<>\n])*> taken greedily, as re does */
        size_t k = j + 1;
        for (;;) {
            if (k + 1 < n && l[k] == '-' && l[k + 1] == '>') { k += 2; continue; }
            if (k < n && l[k] != '<' && l[k] != '>') { k++; continue; }
            break;
        }
        if (k >= n || l[k] != '>') return 0;  /* re would backtrack here: leave it to Lark */
        j = k + 1;
    }
    size_t end = j;
    i = skip_blank(l, j, n);
    if (i < n && l[i] == 'E' && i + 1 < n &&
        ((l[i + 1] >= 'A' && l[i + 1] <= 'Z') || is_digit(l[i + 1]) || l[i + 1] == '_' || l[i + 1] == '?')) {
        size_t k = i + 1;
        while (k < n && ((l[k] >= 'A' && l[k] <= 'Z') || is_digit(l[k]) || l[k] == '_' || l[k] == '?')) k++;
        r->errname.s = l + i;
        r->errname.n = k - i;
        end = k;
        i = skip_blank(l, k, n);
    }
    if (i < n && l[i] == '(') {               /* the note: (No such file or directory), ([{fd=3, ...}]) */
        int unf;
        size_t close = scan_args(l, i + 1, n, &unf);
        if (close == (size_t)-1 || unf) return 0;
        end = close + 1;
        i = skip_blank(l, close + 1, n);
    }
    if (i < n && l[i] == '<') {               /* DURATION <\d+\.\d+> or UNAVAILABLE */
        size_t k = i + 1;
        if (n - k >= 12 && memcmp(l + k, "unavailable>", 12) == 0) {
            r->dur.s = l + k;
            r->dur.n = 11;
            i = k + 12;
        } else {
            size_t d = k;
            while (d < n && is_digit(l[d])) d++;
            if (d == k || d >= n || l[d] != '.') return 0;
            size_t f = ++d;
            while (d < n && is_digit(l[d])) d++;
            if (d == f || d >= n || l[d] != '>') return 0;
            r->dur.s = l + k;
            r->dur.n = d - k;
            i = d + 1;
        }
        i = skip_blank(l, i, n);
    }
    if (i != n) return 0;
    r->ret_raw.s = l + start;
    r->ret_raw.n = end - start;
    return 1;
}

static int put_field(buf_t *b, span s) {
    if (buf_put(b, "\x1f", 1)) return -1;
    return s.s ? buf_put(b, s.s, s.n) : 0;
}

/* Frame one line (without its terminator). 1: framed into out, 0: left to Python. */
static int frame_line(const char *l, size_t n, int64_t line_no, buf_t *out) {
    for (size_t k = 0; k < n; k++)            /* control bytes would break the 0x1f/\n framing */
        if ((unsigned char)l[k] < 0x20 && l[k] != '\t') return 0;
    span pid = {0}, ts = {0}, name = {0}, args = {0};
    result_t res;
    memset(&res, 0, sizeof res);
    const char *rec;
    size_t i = skip_blank(l, 0, n);
    /* prefix: pid? TIMESTAMP? (TIMESTAMP outranks PID in the lexer) */
    size_t t = match_timestamp(l, i, n);
    if (!t) {
        if (n - i > 5 && memcmp(l + i, "[pid ", 5) == 0) {
            size_t j = i + 5;
            while (j < n && l[j] == ' ') j++;
            size_t d = j;
            while (j < n && is_digit(l[j])) j++;
            if (j == d || j >= n || l[j] != ']') return 0;
            pid.s = l + d;
            pid.n = j - d;
            i = skip_blank(l, j + 1, n);
        } else if (i < n && is_digit(l[i])) {
            size_t j = i;
            while (j < n && is_digit(l[j])) j++;
            if (j >= n || l[j] != ' ') return 0;  /* PID: \d+(?= ) */
            pid.s = l + i;
            pid.n = j - i;
            i = skip_blank(l, j, n);
        }
        t = match_timestamp(l, i, n);
    }
    if (t) {
        ts.s = l + i;
        ts.n = t - i;
        i = skip_blank(l, t, n);
    }
    if (n - i > 5 && memcmp(l + i, "<... ", 5) == 0) {
        size_t j = i + 5, w = j;
        while (j < n && is_word(l[j])) j++;
        if (j == w || n - j < 9 || memcmp(l + j, " resumed>", 9) != 0) return 0;
        name.s = l + w;
        name.n = j - w;
        size_t a = j + 9;
        int unf;
        size_t close = scan_args(l, a, n, &unf);
        if (close == (size_t)-1 || unf) return 0;
        if (!scan_result(l, close + 1, n, &res)) return 0;
        args.s = l + a;
        args.n = close - a;
        rec = "resumed";
    } else if (i < n && is_name_start(l[i])) {
        if (n - i >= 7 && memcmp(l + i, "strace:", 7) == 0) return 0;   /* STRACE_COLON outranks NAME */
        size_t j = i + 1;
        while (j < n && is_word(l[j])) j++;
        name.s = l + i;
        name.n = j - i;
        j = skip_blank(l, j, n);
        if (j >= n || l[j] != '(') return 0;
        size_t a = j + 1;
        int unf;
        size_t close = scan_args(l, a, n, &unf);
        if (close == (size_t)-1) return 0;
        args.s = l + a;
        args.n = close - a;
        if (unf) {
            rec = "unfinished";
        } else {
            if (!scan_result(l, close + 1, n, &res)) return 0;
            rec = "call";
        }
    } else {
        return 0;
    }
    if (buf_int(out, line_no) || buf_put(out, "\x1f", 1) || buf_put(out, rec, strlen(rec)) ||
        put_field(out, pid) || put_field(out, ts) || put_field(out, name) || put_field(out, args) ||
        put_field(out, res.ret_raw) || put_field(out, res.retval) || put_field(out, res.errname) ||
        put_field(out, res.dur) || buf_put(out, "\n", 1))
        return -1;
    return 1;
}

/* Frame buf[0:len) (whole lines; the last may lack its newline). 0 on success, -1 out of memory. */
int sp_strace_frame(const char *buf, size_t len, int64_t first_line_no, sp_frame_result *res) {
    buf_t framed = {0}, other = {0};
    /* the framed text is about as long as the input: size it once instead of doubling into it */
    framed.cap = len + len / 8 + 4096;
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
        if (skip_blank(l, 0, n) == n) {
            blank++;
        } else {
            int r = frame_line(l, n, line_no, &framed);
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
    return -1;
}

void sp_strace_free(sp_frame_result *res) {
    free(res->framed);
    free(res->other);
    res->framed = res->other = NULL;
}

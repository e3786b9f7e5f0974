/* One-pass tokenizer of GDELT event rows into typed columns (the reader's fast path).
 *
 * parse(data, ids,                                                   -- int64 [cap]
 *       sqldate, monthyear, year,                                       -- int32 [cap]
 *       isroot, quad,                                                   -- int8 [cap]
 *       dateadded,                                                      -- int64 [cap]
 *       fractiondate, goldstein,                                        -- float64 [cap]
 *       nummentions, avgtone,                                           -- int32, float64 [cap]
 *       eventcode, basecode, rootcode, geo1, geo2, actiongeo,
 *       actor1country, actor2country,                                   -- int32 [cap]
 *       layout,                                                         -- int8 [cap]
 *       urloffsets, urlbytes,                  -- int64 [cap + 1], uint8 [>= len(data)]
 *       declined,                                                       -- int64 [2 * max]
 *       keys)                                                           -- int32 [8 * NKEY]
 *   -> (rows, declined lines, status, (distinct values of each of the 8 key columns))
 *
 * Every line (ended by '\n', an optional '\r' before it dropped; empty lines skipped) is
 * split on tabs -- quoting off, as GDELT is written -- and its field count (57, 58 or 61)
 * picks the column of each kept field.  A row is taken only when every kept field has the
 * plain form the cleaning rules keep unchanged:
 *
 *   integers   [+-]?[0-9]{1,18}, within the range of the column's type
 *   decimals   [+-]?([0-9]+.?[0-9]*|.[0-9]+), at most 15 significant digits: the value is
 *              m / 10^k of two exactly representable doubles, so the division is correctly
 *              rounded and equals Python's float() of the text
 *   CAMEO codes  [0-9]{1,4}, keyed 10000 * length + value (so "043" != "43")
 *   countries  empty (0) or two capital letters (1 + 26 * a + b) for the geo codes;
 *              empty or three capital letters (1 + 676 a + 26 b + c) for the actors' CAMEO
 *              country codes
 *   SOURCEURL  (58 and 61 columns) printable ASCII, no space at either end; its bytes are
 *              copied to ``urlbytes`` (row r: ``urloffsets[r] .. urloffsets[r + 1]``)
 *
 * The eight code and country columns come out dictionary-encoded: each row holds the index of
 * its key among the column's distinct keys, which are written (in order of first sight) to
 * ``keys[j * NKEY : j * NKEY + count_j]``.
 *
 * Any other line (another field count, whitespace, an empty number, a marker "---" or "X",
 * an exponent) is declined: its byte range [start, end) goes to ``declined`` and the caller
 * hands it to the general reader, which applies and counts every rule.  More declined lines
 * than ``declined`` holds stop the pass with status 1 (the caller then reads the whole file
 * the general way).  The GIL is released while parsing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAXF 64
#define NBUF 24
#define NDICT 8
#define NROWBUF 20          /* buffers with one item per row (b[0] .. b[19]) */
#define NKEY 50000  /* > largest key: 10000 * 4 + 9999 (codes), 17576 (3-letter countries) */

/* kept fields: id, sqldate, monthyear, year, fractiondate, isroot, code, base, root, quad,
 * goldstein, geo1, geo2, dateadded, action geo, actor 1 country, actor 2 country,
 * nummentions, avgtone */
static const int K57[19] = {0, 1, 2, 3, 4, 25, 26, 27, 28, 29, 30, 37, 44, 56, 51, 7, 17, 31, 34};
static const int K61[19] = {0, 1, 2, 3, 4, 25, 26, 27, 28, 29, 30, 37, 45, 59, 53, 7, 17, 31, 34};

static const double POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int parse_int(const char *s, const char *e, int64_t *out) {
    int neg = 0;
    if (s < e && (*s == '-' || *s == '+')) { neg = (*s == '-'); s++; }
    if (s >= e || e - s > 18) return 0;
    int64_t v = 0;
    for (; s < e; s++) {
        unsigned d = (unsigned char)*s - '0';
        if (d > 9) return 0;
        v = v * 10 + d;
    }
    *out = neg ? -v : v;
    return 1;
}

static inline int parse_i32(const char *s, const char *e, int32_t *out) {
    int64_t v;
    if (!parse_int(s, e, &v) || v < INT32_MIN || v > INT32_MAX) return 0;
    *out = (int32_t)v;
    return 1;
}

static inline int parse_i8(const char *s, const char *e, int8_t *out) {
    int64_t v;
    if (!parse_int(s, e, &v) || v < -128 || v > 127) return 0;
    *out = (int8_t)v;
    return 1;
}

static inline int parse_dec(const char *s, const char *e, double *out) {
    int neg = 0;
    if (s < e && (*s == '-' || *s == '+')) { neg = (*s == '-'); s++; }
    int64_t m = 0;
    int digits = 0, frac = 0, dot = 0, sig = 0;
    for (; s < e; s++) {
        unsigned d = (unsigned char)*s - '0';
        if (d <= 9) {
            if (m || d) sig++;
            m = m * 10 + d;
            digits++;
            frac += dot;
            if (sig > 15 || digits > 18) return 0;
        } else if (*s == '.' && !dot) {
            dot = 1;
        } else {
            return 0;
        }
    }
    if (digits == 0 || frac > 22) return 0;
    double v = (double)m / POW10[frac];
    *out = neg ? -v : v;
    return 1;
}

static inline int parse_code(const char *s, const char *e, int32_t *out) {
    Py_ssize_t len = e - s;
    if (len < 1 || len > 4) return 0;
    int32_t v = 0;
    for (; s < e; s++) {
        unsigned d = (unsigned char)*s - '0';
        if (d > 9) return 0;
        v = v * 10 + (int32_t)d;
    }
    *out = (int32_t)(10000 * len) + v;
    return 1;
}

static inline int parse_country(const char *s, const char *e, int32_t *out) {
    if (e == s) { *out = 0; return 1; }
    if (e - s != 2) return 0;
    unsigned a = (unsigned char)s[0] - 'A', b = (unsigned char)s[1] - 'A';
    if (a > 25 || b > 25) return 0;
    *out = (int32_t)(1 + 26 * a + b);
    return 1;
}

/* A CAMEO actor country code: empty (0) or three capital letters (1 + 676 a + 26 b + c). */
static inline int parse_cc3(const char *s, const char *e, int32_t *out) {
    if (e == s) { *out = 0; return 1; }
    if (e - s != 3) return 0;
    unsigned a = (unsigned char)s[0] - 'A', b = (unsigned char)s[1] - 'A', c = (unsigned char)s[2] - 'A';
    if (a > 25 || b > 25 || c > 25) return 0;
    *out = (int32_t)(1 + 676 * a + 26 * b + c);
    return 1;
}

/* A URL taken as is: printable ASCII without spaces at either end (else the general route). */
static inline int plain_url(const char *s, const char *e) {
    if (e > s && (s[0] == ' ' || e[-1] == ' ')) return 0;
    for (; s < e; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7F) return 0;
    }
    return 1;
}

typedef struct {
    int64_t *ids, *added, *dec, *urloff;
    int32_t *sql, *my, *yr, *ment;
    int8_t *isroot, *quad;
    double *fd, *gold, *tone;
    int32_t *col[NDICT];   /* code, base, root, geo1, geo2, action geo, actor 1/2 country: dictionary indices */
    int32_t *map[NDICT], *keys[NDICT], nkeys[NDICT];
    int8_t *lay;
    char *url;
    Py_ssize_t rows, cap, ndec, dcap;
    const char *start;
    int status;
} State;

/* One line [line, le) with ``ntabs`` tabs and field starts ``fs``: a typed row, or declined.
 * Returns 0 to go on, 1 to stop (status set). */
static inline int row(State *st, const char *line, const char *le, int ntabs, const char **fs) {
    if (le > line && le[-1] == '\r') le--;
    if (le == line) return 0;           /* empty line */
    int nf = ntabs + 1;
    const int *k = (nf == 57 || nf == 58) ? K57 : nf == 61 ? K61 : NULL;
    const int ku = nf == 58 ? 57 : nf == 61 ? 60 : -1;     /* SOURCEURL */
    Py_ssize_t r = st->rows;
    int32_t key[NDICT];
    if (r >= st->cap) { st->status = 2; return 1; }
    /* field i spans [fs[i], fs[i+1] - 1); the last one ends at le */
#define FS(i) fs[(i)]
#define FE(i) ((i) + 1 < nf ? fs[(i) + 1] - 1 : le)
    int ok = k != NULL
          && parse_int(FS(k[0]), FE(k[0]), &st->ids[r])
          && parse_i32(FS(k[1]), FE(k[1]), &st->sql[r])
          && parse_i32(FS(k[2]), FE(k[2]), &st->my[r])
          && parse_i32(FS(k[3]), FE(k[3]), &st->yr[r])
          && parse_dec(FS(k[4]), FE(k[4]), &st->fd[r])
          && parse_i8(FS(k[5]), FE(k[5]), &st->isroot[r])
          && parse_code(FS(k[6]), FE(k[6]), &key[0])
          && parse_code(FS(k[7]), FE(k[7]), &key[1])
          && parse_code(FS(k[8]), FE(k[8]), &key[2])
          && parse_i8(FS(k[9]), FE(k[9]), &st->quad[r])
          && parse_dec(FS(k[10]), FE(k[10]), &st->gold[r])
          && parse_country(FS(k[11]), FE(k[11]), &key[3])
          && parse_country(FS(k[12]), FE(k[12]), &key[4])
          && parse_int(FS(k[13]), FE(k[13]), &st->added[r])
          && parse_country(FS(k[14]), FE(k[14]), &key[5])
          && parse_cc3(FS(k[15]), FE(k[15]), &key[6])
          && parse_cc3(FS(k[16]), FE(k[16]), &key[7])
          && parse_i32(FS(k[17]), FE(k[17]), &st->ment[r])
          && parse_dec(FS(k[18]), FE(k[18]), &st->tone[r])
          && (ku < 0 || plain_url(FS(ku), FE(ku)));
    const char *us = ok && ku >= 0 ? FS(ku) : NULL, *ue = ok && ku >= 0 ? FE(ku) : NULL;
#undef FS
#undef FE
    if (!ok) {
        if (st->ndec >= st->dcap) { st->status = 1; return 1; }
        st->dec[2 * st->ndec] = line - st->start;
        st->dec[2 * st->ndec + 1] = le - st->start;
        st->ndec++;
        return 0;
    }
    Py_ssize_t uo = st->urloff[r];
    if (us != NULL && ue > us) {        /* the URL's bytes (never more than the input's) */
        memcpy(st->url + uo, us, (size_t)(ue - us));
        uo += ue - us;
    }
    st->urloff[r + 1] = uo;
    for (int j = 0; j < NDICT; j++) {   /* dictionary-encode, once the row is taken */
        int32_t *slot = &st->map[j][key[j]];
        if (*slot < 0) {
            *slot = st->nkeys[j];
            st->keys[j][st->nkeys[j]++] = key[j];
        }
        st->col[j][r] = *slot;
    }
    st->lay[r] = (int8_t)nf;
    st->rows = r + 1;
    return 0;
}

/* Bit j of the result: byte p[j] is a tab; *nl: the newlines. */
static inline uint64_t specials64(const char *p, uint64_t *nl) {
#if defined(__SSE2__)
    const __m128i vt = _mm_set1_epi8('\t'), vn = _mm_set1_epi8('\n');
    uint64_t t = 0, n = 0;
    for (int j = 0; j < 4; j++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * j));
        t |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vt)) << (16 * j);
        n |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vn)) << (16 * j);
    }
#else
    uint64_t t = 0, n = 0;
    for (int j = 0; j < 64; j++) {
        t |= (uint64_t)(p[j] == '\t') << j;
        n |= (uint64_t)(p[j] == '\n') << j;
    }
#endif
    *nl = n;
    return t;
}

/* Append the field starts after the tabs of ``m`` (bits of the block at byte ``base``) to
 * fs[nt + 1 ...]; four at a time, unconditionally (fs has slack for the overshoot).  A row
 * with more than MAXF tabs is only counted (it is declined anyway). */
static inline int flatten(uint64_t m, const char *base, const char **fs, int nt) {
    int c = __builtin_popcountll(m);
    if (nt + c <= MAXF) {
        const char **out = fs + nt + 1;
        for (int j = 0; j < c; j += 4) {
            out[j] = base + __builtin_ctzll(m | (1ULL << 63)) + 1;
            m &= m - 1;
            out[j + 1] = base + __builtin_ctzll(m | (1ULL << 63)) + 1;
            m &= m - 1;
            out[j + 2] = base + __builtin_ctzll(m | (1ULL << 63)) + 1;
            m &= m - 1;
            out[j + 3] = base + __builtin_ctzll(m | (1ULL << 63)) + 1;
            m &= m - 1;
        }
    }
    return nt + c;
}

static PyObject *fast_parse(PyObject *self, PyObject *args) {
    Py_buffer data, b[NBUF];
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*w*", &data, &b[0], &b[1], &b[2],
                          &b[3], &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10], &b[11], &b[12], &b[13],
                          &b[14], &b[15], &b[16], &b[17], &b[18], &b[19], &b[20], &b[21], &b[22], &b[23]))
        return NULL;
    /* b[0..8]: ids, sql, my, year, isroot, quad, added, fractiondate, goldstein;
     * b[9], b[10]: nummentions (int32), avgtone (float64); b[11..18]: the NDICT dictionary
     * columns (int32); b[19]: layout (int8); b[20]: URL offsets (int64, rows + 1);
     * b[21]: URL bytes (>= the input's length); b[22]: declined; b[23]: keys (NDICT * NKEY) */
    static const Py_ssize_t item[NROWBUF] = {8, 4, 4, 4, 1, 1, 8, 8, 8, 4, 8, 4, 4, 4, 4, 4, 4, 4, 4, 1};
    State st;
    st.cap = PY_SSIZE_T_MAX;
    int32_t *maps = NULL;
    if (b[23].len < NDICT * NKEY * 4 || b[21].len < data.len || b[20].len < 8
        || !(maps = PyMem_Malloc(NDICT * NKEY * sizeof(int32_t)))) {
        PyBuffer_Release(&data);
        for (int i = 0; i < NBUF; i++) PyBuffer_Release(&b[i]);
        if (maps == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "buffers too small or no memory");
        return NULL;
    }
    memset(maps, 0xFF, NDICT * NKEY * sizeof(int32_t));   /* -1: key not seen */
    for (int j = 0; j < NDICT; j++) {
        st.col[j] = b[11 + j].buf;
        st.map[j] = maps + j * NKEY;
        st.keys[j] = (int32_t *)b[23].buf + j * NKEY;
        st.nkeys[j] = 0;
    }
    for (int i = 0; i < NROWBUF; i++) {
        Py_ssize_t c = b[i].len / item[i];
        if (c < st.cap) st.cap = c;
    }
    if (b[20].len / 8 - 1 < st.cap) st.cap = b[20].len / 8 - 1;
    st.ids = b[0].buf; st.sql = b[1].buf; st.my = b[2].buf; st.yr = b[3].buf; st.isroot = b[4].buf;
    st.quad = b[5].buf; st.added = b[6].buf; st.fd = b[7].buf; st.gold = b[8].buf;
    st.ment = b[9].buf; st.tone = b[10].buf;
    st.lay = b[19].buf; st.urloff = b[20].buf; st.url = b[21].buf; st.dec = b[22].buf;
    st.urloff[0] = 0;
    st.dcap = b[22].len / 16;
    st.rows = st.ndec = 0;
    st.status = 0;
    st.start = data.buf;

    const char *s = data.buf;
    const Py_ssize_t len = data.len;
    const char *fs[MAXF + 1 + 64 + 4];
    Py_ssize_t line = 0;
    int nt = 0, stop = 0;
    fs[0] = s;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < len && !stop; i += 64) {
        uint64_t nl, t;
        if (i + 64 <= len) {
            t = specials64(s + i, &nl);
        } else {                        /* the tail, zero padded (zeros match nothing) */
            char tail[64] = {0};
            memcpy(tail, s + i, (size_t)(len - i));
            t = specials64(tail, &nl);
        }
        while (nl) {                    /* each line end in the block: its row is complete */
            int bit = __builtin_ctzll(nl);
            nt = flatten(t & ((1ULL << bit) - 1), s + i, fs, nt);
            Py_ssize_t pos = i + bit;
            if (row(&st, s + line, s + pos, nt, fs)) { stop = 1; break; }
            line = pos + 1;
            nt = 0;
            fs[0] = s + line;
            t &= ~((2ULL << bit) - 1);  /* bit 63: 2 << 63 wraps to 0, clearing all */
            nl &= nl - 1;
        }
        if (stop) break;
        nt = flatten(t, s + i, fs, nt);
    }
    if (!stop && line < len) row(&st, s + line, s + len, nt, fs);
    Py_END_ALLOW_THREADS

    PyMem_Free(maps);
    PyBuffer_Release(&data);
    for (int i = 0; i < NBUF; i++) PyBuffer_Release(&b[i]);
    return Py_BuildValue("nni(iiiiiiii)", st.rows, st.ndec, st.status, st.nkeys[0], st.nkeys[1], st.nkeys[2],
                         st.nkeys[3], st.nkeys[4], st.nkeys[5], st.nkeys[6], st.nkeys[7]);
}

static PyMethodDef methods[] = {
    {"parse", fast_parse, METH_VARARGS, "Tokenize GDELT rows into typed column buffers (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastread",
                                    "Fast path of the GDELT reader (C).", -1, methods};

PyMODINIT_FUNC PyInit__fastread(void) { return PyModule_Create(&module); }

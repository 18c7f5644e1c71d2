/*
 * Fused row kernels of the O(n·d) measures (app.measures._native wraps them).
 *
 * Each kernel reads a block of image rows ONCE, converting every element to float64 in a
 * row-sized scratch buffer that stays in the L1 cache, and does all of that row's work
 * there: the squared norm, the dot products a pass needs, the per-class sum. NumPy needs a
 * full float16 -> float64 conversion of the block (the slowest step: numpy 2.x does not
 * vectorise it) and then one more sweep per operation; this does one.
 *
 * Arithmetic is float64 throughout (float16 and float32 widen exactly), so the results are
 * those of the NumPy path up to the order of float64 summation. Rows whose squared norm is
 * zero or not finite are left to the caller (it raises, or rescues an over/underflowing
 * float64 row exactly as the NumPy path does).
 *
 * Only the buffer protocol is used (no NumPy headers): any C-contiguous-rowed buffer with
 * format 'e' (float16), 'f' (float32) or 'd' (float64) is accepted. The GIL is released
 * while a kernel runs. On x86-64 CPUs with AVX2/FMA/F16C the row loops use them (checked at
 * run time); elsewhere portable C with a 65536-entry float16 table.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define IIMM_X86 1
#include <immintrin.h>
#endif

enum { KIND_F16 = 0, KIND_F32 = 1, KIND_F64 = 2 };

static double half_table[65536];
static int cpu_has_avx2 = 0; /* what the CPU offers */
static int have_avx2 = 0;    /* what the loops use (tests can force the portable path) */

/* IEEE 754 binary16 bits to double (exact), for the table. */
static double half_to_double(uint16_t h) {
    int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    double v;
    if (exponent == 0) {
        v = ldexp((double)mantissa, -24);
    } else if (exponent == 31) {
        v = mantissa ? NAN : INFINITY;
    } else {
        v = ldexp((double)(mantissa | 0x400), exponent - 25);
    }
    return sign ? -v : v;
}

/* ------------------------------------------------------------------ row conversion */

static void widen_portable(const char *row, int kind, Py_ssize_t d, double *out) {
    Py_ssize_t j;
    if (kind == KIND_F16) {
        const uint16_t *h = (const uint16_t *)row;
        for (j = 0; j < d; j++) out[j] = half_table[h[j]];
    } else if (kind == KIND_F32) {
        const float *f = (const float *)row;
        for (j = 0; j < d; j++) out[j] = (double)f[j];
    } else {
        memcpy(out, row, (size_t)d * sizeof(double));
    }
}

#ifdef IIMM_X86
__attribute__((target("avx2,fma,f16c"))) static void widen_avx2(const char *row, int kind,
                                                                 Py_ssize_t d, double *out) {
    Py_ssize_t j = 0;
    if (kind == KIND_F16) {
        const uint16_t *h = (const uint16_t *)row;
        for (; j + 8 <= d; j += 8) {
            __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + j)));
            _mm256_storeu_pd(out + j, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
            _mm256_storeu_pd(out + j + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
        }
        for (; j < d; j++) out[j] = half_table[h[j]];
    } else if (kind == KIND_F32) {
        const float *f = (const float *)row;
        for (; j + 4 <= d; j += 4) _mm256_storeu_pd(out + j, _mm256_cvtps_pd(_mm_loadu_ps(f + j)));
        for (; j < d; j++) out[j] = (double)f[j];
    } else {
        memcpy(out, row, (size_t)d * sizeof(double));
    }
}

/* Σ_j a_j b_j with four 4-wide accumulators (the summation order differs from NumPy's). */
__attribute__((target("avx2,fma"))) static double dot_avx2(const double *a, const double *b,
                                                           Py_ssize_t d) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    Py_ssize_t j = 0;
    for (; j + 16 <= d; j += 16) {
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a + j), _mm256_loadu_pd(b + j), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(a + j + 4), _mm256_loadu_pd(b + j + 4), s1);
        s2 = _mm256_fmadd_pd(_mm256_loadu_pd(a + j + 8), _mm256_loadu_pd(b + j + 8), s2);
        s3 = _mm256_fmadd_pd(_mm256_loadu_pd(a + j + 12), _mm256_loadu_pd(b + j + 12), s3);
    }
    for (; j + 4 <= d; j += 4)
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a + j), _mm256_loadu_pd(b + j), s0);
    __m256d s = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double acc = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; j < d; j++) acc += a[j] * b[j];
    return acc;
}

/* dst += w * src */
__attribute__((target("avx2,fma"))) static void axpy_avx2(double w, const double *src,
                                                          double *dst, Py_ssize_t d) {
    __m256d vw = _mm256_set1_pd(w);
    Py_ssize_t j = 0;
    for (; j + 4 <= d; j += 4)
        _mm256_storeu_pd(dst + j,
                         _mm256_fmadd_pd(vw, _mm256_loadu_pd(src + j), _mm256_loadu_pd(dst + j)));
    for (; j < d; j++) dst[j] += w * src[j];
}
#endif

static double dot_portable(const double *a, const double *b, Py_ssize_t d) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    Py_ssize_t j = 0;
    for (; j + 4 <= d; j += 4) {
        s0 += a[j] * b[j];
        s1 += a[j + 1] * b[j + 1];
        s2 += a[j + 2] * b[j + 2];
        s3 += a[j + 3] * b[j + 3];
    }
    for (; j < d; j++) s0 += a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

static void axpy_portable(double w, const double *src, double *dst, Py_ssize_t d) {
    for (Py_ssize_t j = 0; j < d; j++) dst[j] += w * src[j];
}

static void widen(const char *row, int kind, Py_ssize_t d, double *out) {
#ifdef IIMM_X86
    if (have_avx2) {
        widen_avx2(row, kind, d, out);
        return;
    }
#endif
    widen_portable(row, kind, d, out);
}

static double dot(const double *a, const double *b, Py_ssize_t d) {
#ifdef IIMM_X86
    if (have_avx2) return dot_avx2(a, b, d);
#endif
    return dot_portable(a, b, d);
}

static void axpy(double w, const double *src, double *dst, Py_ssize_t d) {
#ifdef IIMM_X86
    if (have_avx2) {
        axpy_avx2(w, src, dst, d);
        return;
    }
#endif
    axpy_portable(w, src, dst, d);
}

/* ------------------------------------------------------------------ buffer checks */

static int float_kind(const Py_buffer *b) {
    const char *f = b->format ? b->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (f[0] == 'e' && f[1] == 0 && b->itemsize == 2) return KIND_F16;
    if (f[0] == 'f' && f[1] == 0 && b->itemsize == 4) return KIND_F32;
    if (f[0] == 'd' && f[1] == 0 && b->itemsize == 8) return KIND_F64;
    return -1;
}

/* Rows of a 2-D buffer must each be contiguous (any row stride). */
static int check_rows(const Py_buffer *b, const char *name) {
    if (b->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s must be 2-D", name);
        return -1;
    }
    if (b->shape[1] > 1 && b->strides[1] != b->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s rows must be contiguous", name);
        return -1;
    }
    if (float_kind(b) < 0) {
        PyErr_Format(PyExc_ValueError, "%s must be float16, float32 or float64", name);
        return -1;
    }
    return 0;
}

static int check_f64(const Py_buffer *b, const char *name, int ndim, Py_ssize_t rows,
                     Py_ssize_t cols) {
    if (b->ndim != ndim || float_kind(b) != KIND_F64 || !PyBuffer_IsContiguous(b, 'C') ||
        b->shape[0] != rows || (ndim == 2 && b->shape[1] != cols)) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous float64 array of shape (%zd%s%zd)",
                     name, rows, ndim == 2 ? ", " : "", ndim == 2 ? cols : (Py_ssize_t)0);
        return -1;
    }
    return 0;
}

/* The four buffer arguments of a kernel: two read-only inputs, then two writable outputs.
   On failure the exception is set and every buffer taken is released. */
static int take_buffers(PyObject *args, Py_buffer b[4]) {
    PyObject *o[4];
    memset(b, 0, 4 * sizeof(Py_buffer));
    if (!PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &o[3])) return -1;
    for (int i = 0; i < 4; i++) {
        if (PyObject_GetBuffer(o[i], &b[i], i < 2 ? PyBUF_RECORDS_RO : PyBUF_RECORDS) < 0) {
            while (--i >= 0) PyBuffer_Release(&b[i]);
            memset(b, 0, 4 * sizeof(Py_buffer));
            return -1;
        }
    }
    return 0;
}

static void release_buffers(Py_buffer b[4]) {
    for (int i = 0; i < 4; i++)
        if (b[i].obj) PyBuffer_Release(&b[i]);
}

/* Rows of a C-contiguous float64 (rows, cols) operand, or -1 with the exception set. */
static Py_ssize_t f64_rows(const Py_buffer *b, const char *name, Py_ssize_t cols) {
    if (b->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s must be 2-D", name);
        return -1;
    }
    return check_f64(b, name, 2, b->shape[0], cols) < 0 ? -1 : b->shape[0];
}

/* A float64 scratch row of d values (freed by the caller), or NULL with MemoryError set. */
static double *scratch_row(Py_ssize_t d) {
    double *buf = malloc((size_t)(d > 0 ? d : 1) * sizeof(double));
    if (!buf) PyErr_NoMemory();
    return buf;
}

/* ------------------------------------------------------------------ kernels */

PyDoc_STRVAR(class_sums_doc,
             "class_sums(x, labels, sums, sq) -> int\n\n"
             "For each row i of x (n x d; float16/32/64): sq[i] = ||x_i||^2 and, when that is\n"
             "finite and > 0, sums[labels[i]] += x_i / ||x_i|| (float64 throughout).\n"
             "labels: int64 or int32 of length n, each in 0..k-1; sums: float64 (k, d),\n"
             "updated in place; sq: float64 (n,). Returns the number of rows left out.");

static PyObject *class_sums(PyObject *self, PyObject *args) {
    Py_buffer b[4];
    if (take_buffers(args, b) < 0) return NULL;
    Py_buffer x = b[0], y = b[1], s = b[2], q = b[3];
    PyObject *result = NULL;
    if (check_rows(&x, "x") < 0) goto done;
    Py_ssize_t n = x.shape[0], d = x.shape[1];
    const char *yf = y.format ? y.format : "B";
    if (*yf == '<' || *yf == '=' || *yf == '@') yf++;
    int y64 = y.itemsize == 8 && (yf[0] == 'l' || yf[0] == 'q') && yf[1] == 0;
    int y32 = y.itemsize == 4 && (yf[0] == 'i' || yf[0] == 'l') && yf[1] == 0;
    if (y.ndim != 1 || y.shape[0] != n || !(y64 || y32) || !PyBuffer_IsContiguous(&y, 'C')) {
        PyErr_SetString(PyExc_ValueError, "labels must be a contiguous int32/int64 array of length n");
        goto done;
    }
    Py_ssize_t k = f64_rows(&s, "sums", d);
    if (k < 0 || check_f64(&q, "sq", 1, n, 0) < 0) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long c = y64 ? ((const int64_t *)y.buf)[i] : ((const int32_t *)y.buf)[i];
        if (c < 0 || c >= k) {
            PyErr_Format(PyExc_ValueError, "label %lld of row %zd is outside 0..%zd", c, i, k - 1);
            goto done;
        }
    }
    double *buf = scratch_row(d);
    if (!buf) goto done;
    int kind = float_kind(&x);
    Py_ssize_t skipped = 0;
    double *sums = (double *)s.buf, *sq = (double *)q.buf;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        widen((const char *)x.buf + i * x.strides[0], kind, d, buf);
        double v = dot(buf, buf, d);
        sq[i] = v;
        if (!(v > 0.0) || !isfinite(v)) {
            skipped++;
            continue;
        }
        long long c = y64 ? ((const int64_t *)y.buf)[i] : ((const int32_t *)y.buf)[i];
        axpy(1.0 / sqrt(v), buf, sums + c * d, d);
    }
    Py_END_ALLOW_THREADS;
    free(buf);
    result = PyLong_FromSsize_t(skipped);
done:
    release_buffers(b);
    return result;
}

PyDoc_STRVAR(project_doc,
             "project(x, vecs, dots, sq) -> None\n\n"
             "For each row i of x (n x d; float16/32/64): sq[i] = ||x_i||^2 and\n"
             "dots[i, c] = x_i . vecs[c] (raw rows, not normalised; float64 throughout).\n"
             "vecs: float64 (m, d); dots: float64 (n, m); sq: float64 (n,).");

static PyObject *project(PyObject *self, PyObject *args) {
    Py_buffer b[4];
    if (take_buffers(args, b) < 0) return NULL;
    Py_buffer x = b[0], v = b[1], o = b[2], q = b[3];
    PyObject *result = NULL;
    if (check_rows(&x, "x") < 0) goto done;
    Py_ssize_t n = x.shape[0], d = x.shape[1];
    Py_ssize_t m = f64_rows(&v, "vecs", d);
    if (m < 0 || check_f64(&o, "dots", 2, n, m) < 0 || check_f64(&q, "sq", 1, n, 0) < 0) goto done;
    double *buf = scratch_row(d);
    if (!buf) goto done;
    int kind = float_kind(&x);
    const double *vecs = (const double *)v.buf;
    double *dots = (double *)o.buf, *sq = (double *)q.buf;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        widen((const char *)x.buf + i * x.strides[0], kind, d, buf);
        sq[i] = dot(buf, buf, d);
        for (Py_ssize_t c = 0; c < m; c++) dots[i * m + c] = dot(buf, vecs + c * d, d);
    }
    Py_END_ALLOW_THREADS;
    free(buf);
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release_buffers(b);
    return result;
}

static PyObject *simd(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(have_avx2 ? "avx2+fma+f16c" : "portable");
}

static PyObject *set_simd(PyObject *self, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    have_avx2 = on && cpu_has_avx2;
    return PyBool_FromLong(have_avx2);
}

static PyMethodDef methods[] = {
    {"class_sums", class_sums, METH_VARARGS, class_sums_doc},
    {"project", project, METH_VARARGS, project_doc},
    {"simd", simd, METH_NOARGS, "The instruction set the row loops use."},
    {"set_simd", set_simd, METH_O,
     "Use the SIMD loops when the CPU has them (True) or the portable ones (False)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "Fused float64 row kernels of the O(n·d) measures.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    for (uint32_t h = 0; h < 65536; h++) half_table[h] = half_to_double((uint16_t)h);
#ifdef IIMM_X86
    __builtin_cpu_init();
    cpu_has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("f16c");
    have_avx2 = cpu_has_avx2;
#endif
    return PyModule_Create(&module);
}

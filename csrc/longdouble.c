/* Redis-exact long double and strtod helpers for percore.
 *
 * Rust has no 80-bit x87 `long double`, but INCRBYFLOAT/HINCRBYFLOAT do their
 * arithmetic in it and format with "%.17Lf", so the results (e.g. 0.1+0.2 ==
 * "0.3") differ from f64. These functions port Redis 7.0.15 util.c's
 * string2ld, string2d and ld2string(LD_STR_HUMAN) and expose the one
 * arithmetic operation Redis uses. Values cross the FFI boundary only by
 * pointer so the Rust side never needs to know the long double ABI. */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Same as Redis's util.h. */
#define MAX_LONG_DOUBLE_CHARS (5 * 1024)

/* The Rust side stores a long double in 16 bytes aligned to 16. */
_Static_assert(sizeof(long double) <= 16, "long double must fit in 16 bytes");
_Static_assert(_Alignof(long double) <= 16, "long double alignment must be <= 16");

/* Redis string2ld: strict strtold. `s` needs no terminator; it is copied. */
int percore_string2ld(const char *s, size_t slen, long double *dp) {
    char buf[MAX_LONG_DOUBLE_CHARS];
    long double value;
    char *eptr;

    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';

    errno = 0;
    value = strtold(buf, &eptr);
    if (isspace((unsigned char)buf[0]) || eptr[0] != '\0' ||
        (size_t)(eptr - buf) != slen ||
        (errno == ERANGE &&
         (value == HUGE_VAL || value == -HUGE_VAL || fpclassify(value) == FP_ZERO)) ||
        errno == EINVAL ||
        isnan(value))
        return 0;

    if (dp) *dp = value;
    return 1;
}

/* Redis string2d: strict strtod. `s[slen]` must be readable and NUL, since
 * Redis runs strtod directly on the NUL-terminated sds. */
int percore_string2d(const char *s, size_t slen, double *dp) {
    char *eptr;
    errno = 0;
    *dp = strtod(s, &eptr);
    if (slen == 0 ||
        isspace((unsigned char)s[0]) ||
        (size_t)(eptr - s) != slen ||
        (errno == ERANGE &&
         (*dp == HUGE_VAL || *dp == -HUGE_VAL || fpclassify(*dp) == FP_ZERO)) ||
        isnan(*dp))
        return 0;
    return 1;
}

/* Exact conversion, as Redis does for INT-encoded values: (long double)ll. */
void percore_ld_from_ll(long long v, long double *out) {
    *out = (long double)v;
}

/* out = a + b in long double precision. */
void percore_ld_add(const long double *a, const long double *b, long double *out) {
    *out = *a + *b;
}

/* 1 when the value is neither NaN nor infinite. */
int percore_ld_is_finite(const long double *v) {
    return !(isnan(*v) || isinf(*v));
}

/* Redis 7.0's getTimeoutFromObjectOrReply (seconds): (long long) ceill(v * 1000.0).
 * An out-of-range value converts to LLONG_MIN, as the x86-64 conversion does,
 * made explicit here since C leaves it undefined. */
long long percore_ld_timeout_ms(const long double *v) {
    long double ms = ceill(*v * 1000.0);
    if (isnan(ms) || ms >= 9223372036854775808.0L || ms < -9223372036854775808.0L)
        return LLONG_MIN;
    return (long long)ms;
}

/* Nearest double, for callers that need the value as f64. */
double percore_ld_to_double(const long double *v) {
    return (double)*v;
}

/* Redis ld2string(..., LD_STR_HUMAN): "%.17Lf" with trailing zeros and a
 * trailing '.' removed, "-0" turned into "0". Returns the length written
 * (NUL-terminated), or 0 when `len` is too small, exactly like Redis. */
size_t percore_ld2string_human(char *buf, size_t len, const long double *vp) {
    long double value = *vp;
    size_t l = 0;

    if (isinf(value)) {
        if (len < 5) return 0; /* No room. 5 is "-inf\0" */
        if (value > 0) {
            memcpy(buf, "inf", 3);
            l = 3;
        } else {
            memcpy(buf, "-inf", 4);
            l = 4;
        }
    } else {
        int n = snprintf(buf, len, "%.17Lf", value);
        if (n < 0) return 0;
        l = (size_t)n;
        if (l + 1 > len) return 0; /* No room. */
        /* Now remove trailing zeroes after the '.' */
        if (strchr(buf, '.') != NULL) {
            char *p = buf + l - 1;
            while (*p == '0') {
                p--;
                l--;
            }
            if (*p == '.') l--;
        }
        if (l == 2 && buf[0] == '-' && buf[1] == '0') {
            buf[0] = '0';
            l = 1;
        }
    }
    buf[l] = '\0';
    return l;
}

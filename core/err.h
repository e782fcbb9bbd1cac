/*
 * err.h - holdfast error codes.
 *
 * Errors are values: functions return 0 or a negative HF_E* code and hand
 * results back through out-parameters. The codes are exactly the wire
 * protocol's error list (DESIGN §5), so an error travels from a handler to
 * a client without translation. Thread-safe: everything here is pure.
 */
#ifndef HF_CORE_ERR_H
#define HF_CORE_ERR_H

enum hf_err {
    HF_OK          = 0,
    HF_EBADREQ     = -1,  /* bad_request: malformed or invalid input */
    HF_EUNAUTH     = -2,  /* unauthorized: no or invalid credentials */
    HF_EFORBIDDEN  = -3,  /* forbidden: credentials lack the right */
    HF_ENOTFOUND   = -4,  /* not_found: unknown kind, method or key */
    HF_ECONFLICT   = -5,  /* conflict: state forbids the operation */
    HF_ERATELIMIT  = -6,  /* rate_limited */
    HF_ETOOLARGE   = -7,  /* too_large: over a size limit */
    HF_EOVERLOADED = -8,  /* overloaded: a mailbox or queue is full */
    HF_EUNAVAIL    = -9,  /* unavailable: shutting down, node down */
    HF_ESTORAGE    = -10, /* storage_full: disk or map full */
    HF_ETIMEOUT    = -11, /* timeout */
    HF_EINTERNAL   = -12, /* internal: a bug or an unexpected OS error */
    HF_ECOUNT_     = 13   /* number of codes, 0 included */
};

/* The wire name of an error ("bad_request"...); "internal" for unknown. */
const char *hf_err_name(int err);

/* The HTTP status that goes with an error (DESIGN §5); 200 for HF_OK. */
int hf_err_http(int err);

/* The code for a wire name, or HF_EINTERNAL when the name is unknown. */
int hf_err_from_name(const char *name);

#endif

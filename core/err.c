/* err.c - error names and HTTP statuses, one table indexed by -code. */
#include <string.h>

#include "core/err.h"

static const struct {
    const char *name;
    int http;
} errtab[HF_ECOUNT_] = {
    [0]               = {"ok", 200},
    [-HF_EBADREQ]     = {"bad_request", 400},
    [-HF_EUNAUTH]     = {"unauthorized", 401},
    [-HF_EFORBIDDEN]  = {"forbidden", 403},
    [-HF_ENOTFOUND]   = {"not_found", 404},
    [-HF_ECONFLICT]   = {"conflict", 409},
    [-HF_ERATELIMIT]  = {"rate_limited", 429},
    [-HF_ETOOLARGE]   = {"too_large", 413},
    [-HF_EOVERLOADED] = {"overloaded", 503},
    [-HF_EUNAVAIL]    = {"unavailable", 503},
    [-HF_ESTORAGE]    = {"storage_full", 507},
    [-HF_ETIMEOUT]    = {"timeout", 504},
    [-HF_EINTERNAL]   = {"internal", 500},
};

static int
idx(int err)
{
    return (err <= 0 && err > -HF_ECOUNT_) ? -err : -HF_EINTERNAL;
}

const char *
hf_err_name(int err)
{
    return errtab[idx(err)].name;
}

int
hf_err_http(int err)
{
    return errtab[idx(err)].http;
}

int
hf_err_from_name(const char *name)
{
    for (int i = 1; i < HF_ECOUNT_; i++)
        if (strcmp(errtab[i].name, name) == 0)
            return -i;
    return HF_EINTERNAL;
}

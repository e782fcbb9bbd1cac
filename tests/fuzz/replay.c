/*
 * replay.c - a main() for a fuzz target without libFuzzer: feeds every
 * file named on the command line, and every regular file of every
 * directory named (not recursively, in name order, dot files skipped), to
 * LLVMFuzzerTestOneInput once, after LLVMFuzzerInitialize when the target
 * has one. Each input gets a buffer of exactly its size, as under
 * libFuzzer, so a sanitizer sees a read past its end.
 *
 *   fuzz_wire_replay tests/fuzz/corpus/wire [more dirs or files...]
 *
 * Exits 0 after running at least one input, 1 when there was none (a
 * missing corpus must not pass as an empty one) or a file could not be
 * read. A failing input aborts, as it does under libFuzzer; its name is
 * printed first with HF_FUZZ_VERBOSE=1 in the environment.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tests/fuzz/fuzz.h"

/* Weak: only the targets that need a set-up define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int verbose;
static size_t ninputs, nbytes;

static int
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    /* malloc(0) may return NULL; libFuzzer hands a valid pointer. */
    if ((buf = malloc(n > 0 ? (size_t)n : 1)) == NULL ||
        fread(buf, 1, (size_t)n, f) != (size_t)n)
        goto fail;
    fclose(f);
    if (verbose)
        fprintf(stderr, "replay: %s (%ld bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    ninputs++;
    nbytes += (size_t)n;
    return 0;
fail:
    fprintf(stderr, "replay: cannot read %s\n", path);
    if (f != NULL)
        fclose(f);
    free(buf);
    return -1;
}

static int
run_dir(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort), rv = 0;

    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (ents[i]->d_name[0] != '.' &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir,
                             ents[i]->d_name) < sizeof(path) &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode) && run_file(path) != 0)
            rv = -1;
        free(ents[i]);
    }
    free(ents);
    return rv;
}

int
main(int argc, char **argv)
{
    struct timespec t0, t1;
    const char *v = getenv("HF_FUZZ_VERBOSE");
    int rv = 0;

    verbose = v != NULL && v[0] == '1';
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no such file or directory: %s\n",
                    argv[i]);
            rv = 1;
        } else if ((S_ISDIR(st.st_mode) ? run_dir(argv[i])
                                        : run_file(argv[i])) != 0) {
            rv = 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("replay: %zu inputs, %zu bytes, %.3f s\n", ninputs, nbytes,
           (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return rv != 0 || ninputs == 0 ? 1 : 0;
}

/*
 * main.c - the holdfast executable: the one place that wires core,
 * storage, actors and transport (the gateway, and the nng link between
 * the gateways and the host) together.
 *
 *   holdfast serve [options]   run the server (see --help for options)
 *   holdfast call ADDRESS METHOD ['JSON']   one call over WebSocket
 *   holdfast tail ADDRESS [--since N]       print an actor's events
 *   holdfast test [--kinds DIR] [FILES...]  run Lua kinds' test files
 *   holdfast inspect DATA_DIR [ADDRESS]      offline look at the data
 *   holdfast recover --data DIR --truncate-at SEG:OFF   cut a damaged log
 *   holdfast version
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread and taken by
 * sigwait() on the main thread, which then shuts down in order: the
 * gateway drains (stops taking work, writes the replies it owes), the
 * link stops taking batches, the host finishes and releases everything
 * queued, the gateway and the link stop, then the store commits and
 * closes. Nothing acknowledged is lost, on a clean stop or a crash.
 * SIGHUP, taken the same way, reloads the Lua kinds (lua/lua.h) and
 * re-reads the token keys (--jwt-key, --jwks); the server goes on.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "actors/kinds.h"
#include "cmd/admin.h"
#include "cmd/client.h"
#include "cmd/luatest.h"
#include "core/config.h"
#include "core/err.h"
#include "core/host.h"
#include "core/log.h"
#include "lua/lua.h"
#include "storage/lmdb.h"
#include "transport/gateway.h"
#include "transport/nlink.h"
#include "transport/webhook.h"

#define NSETS 5

/* Every layer's options, over the structs serve fills in. */
struct settings {
    hf_config core;
    hf_lmdb_config store;
    hf_gateway_config gw;
    hf_webhook_config wh;
    hf_lua_config lua;
    hf_optset sets[NSETS];
};

static void
settings_init(struct settings *s)
{
    s->sets[0] = hf_config_set(&s->core);
    s->sets[1] = hf_lmdb_config_set(&s->store);
    s->sets[2] = hf_gateway_config_set(&s->gw);
    s->sets[3] = hf_webhook_config_set(&s->wh);
    s->sets[4] = hf_lua_config_set(&s->lua);
    hf_config_defaults(&s->core);
    hf_lmdb_config_defaults(&s->store);
    hf_gateway_config_defaults(&s->gw);
    hf_webhook_config_defaults(&s->wh);
    hf_lua_config_defaults(&s->lua);
}

static void
usage(FILE *out)
{
    struct settings s;

    settings_init(&s);
    fprintf(out, "usage: holdfast serve [options]\n"
                 "       holdfast call ADDRESS METHOD ['JSON'] [options]\n"
                 "       holdfast tail ADDRESS [--since N] [options]\n"
                 "       holdfast test [--kinds DIR] [FILES...]\n"
                 "       holdfast version\n\n"
                 "serve options (flag, environment variable, meaning):\n");
    hf_opts_usage(s.sets, NSETS, out);
    fprintf(out, "\n");
    hf_cmd_client_usage(out);
    hf_cmd_admin_usage(out);
}

static int
serve(int argc, char **argv)
{
    struct settings s;
    hf_config *cfg = &s.core;
    hf_lmdb_config *sc = &s.store;
    hf_gateway_config *gc = &s.gw;
    hf_store st;
    struct hf_lmdb_opts so;
    hf_host *host = NULL;
    hf_nhost *link = NULL;
    hf_gateway *gw = NULL;
    hf_webhooks *wh = NULL;
    hf_lua *lua = NULL;
    const struct hf_kind *const *kinds;
    size_t nkinds;
    sigset_t sigs;
    int argi = 0, sig = 0, rv;

    settings_init(&s);
    if (hf_opts_env(s.sets, NSETS, stderr) != 0 ||
        hf_opts_args(s.sets, NSETS, argc, argv, &argi, stderr) != 0)
        return 2;
    if (argi < argc) {
        fprintf(stderr, "holdfast: unexpected argument '%s'\n", argv[argi]);
        usage(stderr);
        return 2;
    }
    hf_config_finish(cfg);
    hf_gateway_config_finish(gc);
    hf_log_set_level(cfg->log_level);
    /* A kind file that does not load stops us here, "file:line: msg". */
    if (hf_lua_open(&lua, &s.lua, hf_kinds, hf_nkinds, stderr) != 0) {
        fprintf(stderr, "holdfast: the Lua kinds did not load\n");
        return 1;
    }
    kinds = hf_lua_kinds(lua, &nkinds);

    /* Block the stop signals (and SIGHUP) before any thread exists, so
     * every thread inherits the mask and only sigwait() below sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    so = hf_lmdb_config_opts_of(sc);
    so.nreaders = cfg->workers + 2;
    rv = hf_lmdb_open(&st, &so);
    if (rv != 0) {
        hf_error("main", "cannot open the data directory %s: %s", sc->data,
                 hf_err_name(rv));
        hf_lua_close(lua);
        return 1;
    }
    /* Webhooks read with the store's last reader (the host uses the
     * others: one per worker, and cfg->workers at start-up). */
    if (hf_webhooks_new(&wh, &s.wh, st, cfg->workers + 1) != 0) {
        st.ops->close(st.self);
        hf_lua_close(lua);
        return 2;
    }
    rv = hf_host_open(&host, &(struct hf_host_opts){
                                 .cfg = cfg,
                                 .store = st,
                                 .kinds = kinds,
                                 .nkinds = nkinds,
                                 .feed = hf_webhooks_feed(wh),
                             });
    if (rv != 0) {
        hf_error("main", "cannot start the actor host: %s", hf_err_name(rv));
        hf_webhooks_free(wh);
        st.ops->close(st.self);
        hf_lua_close(lua);
        return 1;
    }
    if (wh != NULL && hf_webhooks_start(wh) != 0) {
        hf_error("main", "cannot start the webhook thread");
        hf_host_close(host);
        hf_webhooks_free(wh);
        st.ops->close(st.self);
        hf_lua_close(lua);
        return 1;
    }
    if ((rv = hf_nhost_open(&link, host, NULL, gc->gateways)) != 0 ||
        (rv = hf_gateway_start(&gw, gc, NULL, link)) != 0) {
        hf_error("main", "cannot start the gateway: %s", hf_err_name(rv));
        hf_nhost_stop_recv(link);
        hf_host_close(host);
        hf_nhost_close(link);
        hf_webhooks_free(wh);
        st.ops->close(st.self);
        hf_lua_close(lua);
        return 1;
    }
    hf_info("main",
            "holdfast %s started: data %s, %d workers, %d gateways, "
            "durability %s, %zu kinds (%zu in Lua%s%s)",
            HF_VERSION, sc->data, cfg->workers, gc->gateways,
            sc->durability == HF_DURABLE_SYNC ? "sync" : "NONE (no fsync)",
            nkinds, hf_lua_count(lua), hf_lua_dir(lua)[0] ? " from " : "",
            hf_lua_dir(lua));
    hf_info("main", "open %s://127.0.0.1:%d/ for the demo boards",
            gc->tls_cert[0] ? "https" : "http", hf_gateway_port(gw));

    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        hf_lua_reload(lua, host);
        (void)hf_gateway_reload(gw); /* logs what it did */
    }
    /* Stop in dependency order: no new work, replies owed are written,
     * connections close with 1001; then the host finishes and releases
     * what it holds, and the store commits and closes. */
    hf_info("main", "%s received, stopping", strsignal(sig));
    hf_gateway_drain(gw);
    hf_nhost_stop_recv(link);
    hf_host_close(host);
    hf_gateway_stop(gw);
    hf_nhost_close(link);
    hf_webhooks_free(wh); /* after the host: its last commits fed rows */
    st.ops->close(st.self);
    hf_lua_close(lua);
    hf_info("main", "stopped cleanly");
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "call") == 0)
        return hf_cmd_call(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "tail") == 0)
        return hf_cmd_tail(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "test") == 0)
        return hf_cmd_test(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0)
        return hf_cmd_inspect(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "recover") == 0)
        return hf_cmd_recover(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        printf("holdfast %s\n", HF_VERSION);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "help") == 0 ||
                      strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}

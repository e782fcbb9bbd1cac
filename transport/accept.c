/*
 * accept.c - the acceptor thread: it owns the listening socket and hands
 * each accepted socket to a gateway thread, round robin (gateway.c's
 * design notes tell why, and how descriptors running out are handled).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/vec.h"
#include "transport/gw_int.h"

/* accept() failed for want of descriptors: the connection waiting in the
 * backlog is taken with the reserve descriptor and closed at once, so its
 * client is refused now rather than left to time out, and the listening
 * socket stops being readable. Logged at most every 10 s. */
static void
shed(hf_gateway *g, int err)
{
    uint64_t now = (uint64_t)lws_now_usecs() * 1000u;
    struct rlimit rl = {0};
    int fd;

    if (g->spare >= 0) {
        close(g->spare);
        g->spare = -1;
    }
    fd = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        g->shed++;
        HF_GW_INC(connections_refused);
    }
    g->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (g->shed_logged_ns == 0 || now - g->shed_logged_ns >= 10000000000u) {
        getrlimit(RLIMIT_NOFILE, &rl);
        hf_warn("gateway",
                "accept: %s (RLIMIT_NOFILE %llu): refusing new connections "
                "until some close (%llu refused so far)",
                strerror(err), (unsigned long long)rl.rlim_cur,
                (unsigned long long)g->shed);
        g->shed_logged_ns = now;
    }
    if (fd < 0)
        usleep(10000); /* not even the reserve helped: do not spin */
}

void *
gw_acceptor(void *arg)
{
    hf_gateway *g = arg;
    struct pollfd pf[2] = {{.fd = g->lfd, .events = POLLIN},
                           {.fd = g->wake[0], .events = POLLIN}};

    while (!atomic_load(&g->stop_accept)) {
        int fd, one = 1, live = 0;
        struct gw *gw;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        fd = accept4(g->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                shed(g, errno);
            continue;
        }
        for (int i = 0; i < g->nw; i++)
            live += atomic_load(&g->gws[i].live);
        if (live >= g->cfg.max_conns) {
            HF_GW_INC(connections_refused);
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        gw = &g->gws[g->next++ % (unsigned)g->nw];
        atomic_fetch_add(&gw->live, 1);
        pthread_mutex_lock(&gw->mu);
        HF_VEC_PUSH(gw->fds, gw->nfds, gw->capfds, 64, fd);
        pthread_mutex_unlock(&gw->mu);
        lws_cancel_service(gw->ctx);
    }
    return NULL;
}


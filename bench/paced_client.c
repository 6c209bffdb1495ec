// The floor for paced HTTP polling: N keep-alive connections, each sending one GET every
// interval on its own phase, in a single epoll loop with a 1 ms timer wheel and no other work
// (no parsing beyond the response's length, no output). poll_bench.sh runs it against the same
// simulator as mdagg and wrk, so the CPU a paced poller cannot avoid (a wakeup per few polls,
// and the kernel's own ACK of each response, which wrk's back-to-back requests piggyback) is
// measured on the same machine in the same run.
//
// Usage: paced_client HOST PORT CONNECTIONS INTERVAL_MS WARMUP_S SECONDS
// Prints one JSON line: responses, skipped ticks, and CPU microseconds per response, measured
// after the warm-up.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    int busy;         // a request is out, its response not yet complete
    size_t have;      // bytes of the current response received
    size_t need;      // its total length once the header is in, else 0
    char request[128];
    size_t request_len;
    char buf[4096];
    int next;         // next connection in the same wheel slot
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void die(const char* what) {
    perror(what);
    exit(1);
}

// The response is complete once its header and Content-Length bytes of body are in.
static int response_complete(struct conn* c) {
    if (c->need == 0) {
        char* end = memmem(c->buf, c->have, "\r\n\r\n", 4);
        if (!end) return 0;
        size_t header = (size_t)(end - c->buf) + 4;
        char* cl = memmem(c->buf, header, "ontent-Length:", 14);
        if (!cl) cl = memmem(c->buf, header, "ontent-length:", 14);
        if (!cl) { fprintf(stderr, "response without Content-Length\n"); exit(1); }
        c->need = header + strtoul(cl + 14, NULL, 10);
    }
    return c->have >= c->need;
}

int main(int argc, char** argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS INTERVAL_MS WARMUP_S SECONDS\n", argv[0]);
        return 2;
    }
    const char* host = argv[1];
    int port = atoi(argv[2]), n = atoi(argv[3]), interval = atoi(argv[4]);
    int warmup = atoi(argv[5]), seconds = atoi(argv[6]);
    if (n <= 0 || interval <= 0) return 2;

    struct conn* conns = calloc((size_t)n, sizeof *conns);
    int* wheel = malloc(sizeof(int) * (size_t)interval);  // head of each 1 ms slot
    for (int s = 0; s < interval; ++s) wheel[s] = -1;
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    for (int i = 0; i < n; ++i) {
        struct conn* c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) die("socket");
        if (connect(c->fd, (struct sockaddr*)&addr, sizeof addr) != 0) die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int flags = 1;
        if (ioctl(c->fd, FIONBIO, &flags) != 0) die("FIONBIO");
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
        c->request_len = (size_t)snprintf(c->request, sizeof c->request,
                                          "GET /quotes/STOCK_%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", i, host, port);
        int slot = (int)((int64_t)i * interval / n);  // phases spread over the interval
        c->next = wheel[slot];
        wheel[slot] = i;
    }

    uint64_t responses = 0, skipped = 0, measured_responses = 0;
    double cpu0 = 0;
    const int64_t start = now_ms();
    const int64_t measure_from = start + warmup * 1000LL, stop = measure_from + seconds * 1000LL;
    int64_t next_slot_ms = start;  // the next millisecond whose slot has not fired
    int measuring = 0;
    struct epoll_event events[512];
    for (;;) {
        int64_t t = now_ms();
        if (!measuring && t >= measure_from) {
            measuring = 1;
            cpu0 = cpu_us();
            measured_responses = responses;
        }
        if (t >= stop) break;
        // Fire every slot up to now; a slot missed while busy fires late, once (no burst).
        for (; next_slot_ms <= t; ++next_slot_ms) {
            for (int i = wheel[next_slot_ms % interval]; i >= 0; i = conns[i].next) {
                struct conn* c = &conns[i];
                if (c->busy) {
                    ++skipped;
                    continue;
                }
                ssize_t w = send(c->fd, c->request, c->request_len, MSG_NOSIGNAL);
                if (w != (ssize_t)c->request_len) die("send");
                c->busy = 1;
                c->have = c->need = 0;
            }
        }
        int timeout = (int)(next_slot_ms - now_ms());
        int k = epoll_wait(ep, events, 512, timeout < 0 ? 0 : timeout);
        if (k < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < k; ++e) {
            struct conn* c = &conns[events[e].data.u32];
            for (;;) {
                ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
                if (r > 0) {
                    c->have += (size_t)r;
                    if (c->busy && response_complete(c)) {
                        c->busy = 0;
                        ++responses;
                        break;  // the response is whole: nothing more is due until the next GET
                    }
                    if (c->have == sizeof c->buf) { fprintf(stderr, "response too large\n"); return 1; }
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                fprintf(stderr, "connection %u closed\n", events[e].data.u32);
                return 1;
            }
        }
    }
    const double cpu = cpu_us() - cpu0;
    const uint64_t got = responses - measured_responses;
    printf("{\"responses\":%llu,\"responses_per_s\":%.1f,\"skipped\":%llu,\"cpu_us_per_response\":%.3f}\n",
           (unsigned long long)got, got / (double)seconds, (unsigned long long)skipped, got ? cpu / got : 0.0);
    return 0;
}

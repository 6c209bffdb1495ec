// The floor for producing to Kafka with librdkafka: a bare paced loop that does what the sink
// must do per record and nothing else (no polling, no JSON formatting, no files, no metrics).
// Per record: rd_kafka_producev with the key, a copied value of the sink's size, the timestamp,
// an opaque and the `type` and `source` headers (issue 16's contract), with the sink's producer
// settings (acks all, idempotence, murmur2_random, LINGER_MS). A thread serves the delivery
// reports as the sink's does (rd_kafka_poll, a 1 ms gather after a turn that served some).
// kafka_bench.sh runs it against the same mock cluster in the same run: its CPU per record is
// what any client of this librdkafka pays at this rate, so the sink's cost above it is ours.
//
// Usage: kafka_floor BOOTSTRAPS TOPIC RATE LINGER_MS WARMUP_S SECONDS [HEADERS(0-2)=2] [KEY=VALUE...]
// (KEY=VALUE: further librdkafka properties, to try a setting against the floor)
// REPORTS_ON_PRODUCER=1 serves the reports on the producing thread instead (rd_kafka_poll(0)
// once per 1 ms tick), so each message is allocated and freed on one thread: the measure of
// what a sink pays for freeing librdkafka's messages on another thread than it produced them.
// Prints one JSON line: records delivered per second and CPU microseconds per record, for the
// whole process and for the producing thread, the report thread and librdkafka's threads.
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static atomic_ulong delivered, failed;
static atomic_int stop;
static double dr_cpu_s;

static double now_s(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double process_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk, (void)opaque;
  if (m->err) atomic_fetch_add(&failed, 1);
  else atomic_fetch_add(&delivered, 1);
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
  char error[512];
  if (rd_kafka_conf_set(conf, key, value, error, sizeof error) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "kafka_floor: %s: %s\n", key, error);
    exit(2);
  }
}

// The sink's delivery-report thread; its CPU is read at the end of the measured window.
static double dr_window_start;
static atomic_int dr_mark;  // 1: take the window's start; 2: take its end
static void *serve_reports(void *arg) {
  rd_kafka_t *rk = arg;
  pthread_setname_np(pthread_self(), "floor-dr");
  while (!atomic_load(&stop)) {
    if (atomic_load(&dr_mark) == 1) {
      dr_window_start = now_s(CLOCK_THREAD_CPUTIME_ID);
      atomic_store(&dr_mark, 0);
    }
    if (rd_kafka_poll(rk, 100) > 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  dr_cpu_s = now_s(CLOCK_THREAD_CPUTIME_ID) - dr_window_start;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: kafka_floor BOOTSTRAPS TOPIC RATE LINGER_MS WARMUP_S SECONDS [HEADERS]\n");
    return 2;
  }
  const double rate = atof(argv[3]), warmup = atof(argv[5]), secs = atof(argv[6]);
  const int headers = argc > 7 ? atoi(argv[7]) : 2;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", argv[1]);
  set(conf, "acks", "all");
  set(conf, "enable.idempotence", "true");
  set(conf, "compression.type", "none");
  set(conf, "linger.ms", argv[4]);
  set(conf, "queue.buffering.max.messages", "2147483647");
  set(conf, "partitioner", "murmur2_random");
  for (int i = 8; i < argc; ++i) {
    char *eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "kafka_floor: %s: expected KEY=VALUE\n", argv[i]);
      return 2;
    }
    *eq = '\0';
    set(conf, argv[i], eq + 1);
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char error[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (!rk) {
    fprintf(stderr, "kafka_floor: %s\n", error);
    return 2;
  }
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, argv[2], NULL);
  pthread_t dr;
  const int reports_here = getenv("REPORTS_ON_PRODUCER") != NULL;
  if (!reports_here) pthread_create(&dr, NULL, serve_reports, rk);

  // A quote line as the sink sends it (about the bench's size).
  char value[512];
  const int value_len = snprintf(value, sizeof value,
                                 "{\"type\":\"quote\",\"symbol\":\"STOCK_1234\",\"source\":\"sim\",\"bid\":\"101.25\","
                                 "\"ask\":\"101.27\",\"bid_size\":\"300\",\"ask_size\":\"500\",\"exchange_time\":"
                                 "\"2026-12-02T22:56:42.123Z\",\"receive_time\":\"2026-12-02T22:56:42.125123456Z\","
                                 "\"seq\":123456}");
  char key[32];
  const double start = now_s(CLOCK_MONOTONIC);
  double window_start = 0, cpu0 = 0, main0 = 0;
  unsigned long d0 = 0, sent = 0;
  for (;;) {
    const double t = now_s(CLOCK_MONOTONIC) - start;
    if (window_start == 0 && t >= warmup) {
      window_start = t;
      cpu0 = process_cpu_s();
      main0 = now_s(CLOCK_THREAD_CPUTIME_ID);
      d0 = atomic_load(&delivered);
      atomic_store(&dr_mark, 1);
    }
    if (t >= warmup + secs) break;
    // Due records at RATE, then a 1 ms sleep: the daemon's strand also produces in bursts.
    const unsigned long due = (unsigned long)(t * rate);
    for (; sent < due; ++sent) {
      const int key_len = snprintf(key, sizeof key, "STOCK_%lu", sent % 2000);
      const int64_t ts_ms = (int64_t)(now_s(CLOCK_REALTIME) * 1000);
      rd_kafka_resp_err_t err;
      if (headers >= 2)
        err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                                RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE((void *)(intptr_t)ts_ms),
                                RD_KAFKA_V_HEADER("type", "quote", 5), RD_KAFKA_V_HEADER("source", "sim", 3),
                                RD_KAFKA_V_END);
      else if (headers == 1)
        err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                                RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE((void *)(intptr_t)ts_ms),
                                RD_KAFKA_V_HEADER("type", "quote", 5), RD_KAFKA_V_END);
      else
        err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                                RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE((void *)(intptr_t)ts_ms),
                                RD_KAFKA_V_END);
      if (err) atomic_fetch_add(&failed, 1);
    }
    if (reports_here) rd_kafka_poll(rk, 0);
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  const double elapsed = now_s(CLOCK_MONOTONIC) - start - window_start;
  const double cpu = process_cpu_s() - cpu0, main_cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - main0;
  const unsigned long d = atomic_load(&delivered) - d0;
  atomic_store(&stop, 1);
  if (!reports_here) pthread_join(dr, NULL);
  const double per = d ? 1e6 / d : 0;
  printf("{\"delivered_per_s\":%.0f,\"us_per_record\":%.3f,\"producev_us\":%.3f,\"dr_us\":%.3f,"
         "\"librdkafka_us\":%.3f,\"failed\":%lu,\"headers\":%d}\n",
         d / elapsed, cpu * per, main_cpu * per, dr_cpu_s * per, (cpu - main_cpu - dr_cpu_s) * per,
         atomic_load(&failed), headers);
  rd_kafka_flush(rk, 5000);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return 0;
}

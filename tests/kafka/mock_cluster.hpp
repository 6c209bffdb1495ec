// A Kafka protocol cluster for the tests: librdkafka's mock brokers (rdkafka_mock.h) on
// loopback TCP ports, and a plain consumer that reads topics back. Test code only.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mdagg::kafka_test {

class MockCluster {
public:
    explicit MockCluster(int brokers) {
        char error[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        // The handle only hosts the cluster's thread; it never connects anywhere.
        rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
        rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
        if (!rk_) throw std::runtime_error(error);
        cluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
        if (!cluster_) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    }
    ~MockCluster() {
        rd_kafka_mock_cluster_destroy(cluster_);
        rd_kafka_destroy(rk_);
    }
    MockCluster(const MockCluster&) = delete;
    MockCluster& operator=(const MockCluster&) = delete;

    std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
    void create_topic(const std::string& name, int partitions, int replication) {
        check(rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication));
    }
    // broker -1: every broker. Brokers are numbered from 1.
    void set_down(int broker) { check(rd_kafka_mock_broker_set_down(cluster_, broker)); }
    void set_up(int broker) { check(rd_kafka_mock_broker_set_up(cluster_, broker)); }
    void set_leader(const std::string& topic, int partition, int broker) {
        check(rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker));
    }

private:
    static void check(rd_kafka_resp_err_t err) {
        if (err) throw std::runtime_error(rd_kafka_err2str(err));
    }
    rd_kafka_t* rk_ = nullptr;
    rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

struct Message {
    std::string key, value;
    std::map<std::string, std::string> headers;
    std::int64_t timestamp_ms = 0;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
};

namespace detail {

inline rd_kafka_t* new_consumer(const std::string& bootstraps) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "group.id", "mdagg-test", error, sizeof error);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", error, sizeof error);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", error, sizeof error);
    rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (!rk) throw std::runtime_error(error);
    return rk;
}

inline int partition_count(rd_kafka_t* rk, const std::string& topic) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        if (md) rd_kafka_metadata_destroy(md);
        throw std::runtime_error("no metadata for topic " + topic);
    }
    const int partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return partitions;
}

inline Message message_of(const rd_kafka_message_t& m) {
    Message msg;
    if (m.key) msg.key.assign(static_cast<const char*>(m.key), m.key_len);
    if (m.payload) msg.value.assign(static_cast<const char*>(m.payload), m.len);
    rd_kafka_timestamp_type_t type;
    msg.timestamp_ms = rd_kafka_message_timestamp(&m, &type);
    msg.partition = m.partition;
    msg.offset = m.offset;
    rd_kafka_headers_t* headers = nullptr;
    if (!rd_kafka_message_headers(&m, &headers)) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; !rd_kafka_header_get_all(headers, i, &name, &value, &size); ++i)
            msg.headers[name] = std::string(static_cast<const char*>(value), size);
    }
    return msg;
}

}  // namespace detail

// What a topic's log holds, read to its end: tells a record the log never got (log_records
// short of what the producer was told was delivered) from one the reader missed (complete
// false), and from one the mock's log dropped (pruned).
struct TopicContents {
    std::vector<Message> messages;  // partition by partition, each in offset order
    std::int64_t log_records = 0;   // sum over partitions of high - low watermark at the start
    // Sum of the low watermarks: records the mock dropped from the log's head. librdkafka's
    // mock keeps about 5 MB of each partition and silently prunes beyond it.
    std::int64_t pruned = 0;
    bool complete = false;  // every partition read up to its high watermark within the limit
};

// Every record of `topic`: the watermarks are taken first, then each partition is read from
// its low to its high watermark. No idle timeout: a slow reader on a loaded machine cannot
// end early unnoticed (complete stays false when `limit` passes first).
inline TopicContents read_topic(const std::string& bootstraps, const std::string& topic,
                                std::chrono::milliseconds limit = std::chrono::milliseconds(60000)) {
    TopicContents out;
    rd_kafka_t* rk = detail::new_consumer(bootstraps);
    const int partitions = detail::partition_count(rk, topic);
    std::vector<std::int64_t> high(static_cast<std::size_t>(partitions)), next(high.size());
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
        std::int64_t low = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high[p], 10000))
            throw std::runtime_error("no watermarks for " + topic + " [" + std::to_string(p) + "]");
        next[p] = low;
        out.pruned += low;
        out.log_records += high[p] - low;
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = low;
    }
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    const auto done = [&] {
        for (int p = 0; p < partitions; ++p)
            if (next[p] < high[p]) return false;
        return true;
    };
    std::vector<std::vector<Message>> by_partition(high.size());
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err && m->partition >= 0 && m->partition < partitions && m->offset < high[m->partition]) {
            by_partition[m->partition].push_back(detail::message_of(*m));
            next[m->partition] = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
    out.complete = done();
    for (auto& part : by_partition)
        for (auto& m : part) out.messages.push_back(std::move(m));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

}  // namespace mdagg::kafka_test

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

// Every message of `topic` from the beginning, partition by partition in offset order, read
// until `expected` arrived or nothing new came for `idle`.
inline std::vector<Message> consume_all(const std::string& bootstraps, const std::string& topic,
                                        std::size_t expected,
                                        std::chrono::milliseconds idle = std::chrono::milliseconds(3000)) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "group.id", "mdagg-test", error, sizeof error);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", error, sizeof error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    if (!rk) throw std::runtime_error(error);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) || md->topic_cnt != 1)
        throw std::runtime_error("no metadata for topic " + topic);
    const int partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);

    std::vector<Message> out;
    auto last_new = std::chrono::steady_clock::now();
    while (out.size() < expected && std::chrono::steady_clock::now() - last_new < idle) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            Message msg;
            if (m->key) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
            if (m->payload) msg.value.assign(static_cast<const char*>(m->payload), m->len);
            rd_kafka_timestamp_type_t type;
            msg.timestamp_ms = rd_kafka_message_timestamp(m, &type);
            msg.partition = m->partition;
            msg.offset = m->offset;
            rd_kafka_headers_t* headers = nullptr;
            if (!rd_kafka_message_headers(m, &headers)) {
                const char* name;
                const void* value;
                size_t size;
                for (size_t i = 0; !rd_kafka_header_get_all(headers, i, &name, &value, &size); ++i)
                    msg.headers[name] = std::string(static_cast<const char*>(value), size);
            }
            out.push_back(std::move(msg));
            last_new = std::chrono::steady_clock::now();
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

}  // namespace mdagg::kafka_test

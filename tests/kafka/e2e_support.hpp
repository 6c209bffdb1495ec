// Shared by the Kafka end-to-end tests: mdagg-kafka-mock in its own process, the daemon's
// config and its `kafka:` section, and the comparison of a topic's quotes with the files the
// same run wrote.
#pragma once

#include "harness.hpp"
#include "mock_cluster.hpp"
#include "output_checks.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace kafka_e2e {

using namespace std::chrono_literals;

// mdagg-kafka-mock with three brokers; commands go through its control file.
struct Mock {
    std::unique_ptr<harness::Process> process;
    std::string bootstraps;
    std::filesystem::path control;
    int answered = 0;

    explicit Mock(const harness::TempDir& dir, int quote_partitions = 8) : control(dir / "kafka-mock.control") {
        std::ofstream(control).flush();
        process = std::make_unique<harness::Process>(
            "kafka-mock",
            std::vector<std::string>{MDAGG_KAFKA_MOCK_BIN, "--brokers", "3", "--topic",
                                     "md.quotes:" + std::to_string(quote_partitions), "--topic", "md.bars:4", "--topic",
                                     "md.events:2", "--control", control.string()},
            dir.path());
        for (int i = 0; i < 1000 && bootstraps.empty(); ++i) {
            const std::string out = process->stdout_text();
            if (const auto nl = out.find('\n'); nl != std::string::npos) bootstraps = out.substr(0, nl);
            else std::this_thread::sleep_for(10ms);
        }
    }
    // Runs one command and waits for its answer.
    void command(const std::string& line) {
        std::ofstream(control, std::ios::app) << line << "\n";
        ++answered;
        for (int i = 0; i < 1000; ++i) {
            const std::string out = process->stdout_text();
            std::size_t lines = 0;
            for (char c : out) lines += c == '\n';
            if (static_cast<int>(lines) >= answered + 1) {
                ASSERT_EQ(out.find("error"), std::string::npos) << out;
                return;
            }
            std::this_thread::sleep_for(10ms);
        }
        FAIL() << "mdagg-kafka-mock did not answer " << line;
    }
};

// The harness's config polling the simulator's first `symbols` symbols every 200 ms (room for
// a loaded machine: the exact counts these tests check need no timed-out poll), with `grace`
// as the drain's budget.
inline harness::DaemonConfig polling(const harness::Sim& sim, int symbols, const std::string& grace) {
    harness::DaemonConfig c;
    c.port = sim.port;
    c.symbols = symbols;
    c.interval = "200ms";
    c.grace = grace;
    return c;
}

// The distinct values of a topic's messages: a record the mock appended twice counts once.
inline std::size_t distinct_values(const mdagg::kafka_test::TopicContents& topic) {
    std::set<std::string> values;
    for (const auto& m : topic.messages) values.insert(m.value);
    return values.size();
}

inline std::string kafka_section(const std::string& bootstraps, const std::string& extra = "") {
    return "kafka:\n  brokers: \"" + bootstraps + "\"\n" +
           "  topics: { quotes: md.quotes, bars: md.bars, events: md.events }\n" + "  linger: 5ms\n" + extra;
}

// The daemon's lines about Kafka, its summaries' kafka fields and its drain line, for a
// failure's message.
inline std::string kafka_lines(const harness::Process& daemon) {
    std::string out;
    for (const auto& line : daemon.stdout_json()) {
        const std::string msg = line.value("msg", "");
        if (msg.rfind("kafka", 0) == 0 || msg.rfind("drain", 0) == 0 || line.contains("kafka") || msg == "librdkafka")
            out += line.dump() + "\n";
    }
    return out;
}

// The latest line with this msg, or null.
inline nlohmann::json last_line(const harness::Process& daemon, const std::string& msg) {
    nlohmann::json last;
    for (auto& line : daemon.stdout_json())
        if (line.value("msg", "") == msg) last = line;
    return last;
}

// md.quotes read back and checked against the files, quote by quote: each message's key is its
// symbol, its headers name its type and source, and each symbol stays on one partition.
struct QuoteCheck {
    std::map<std::string, std::vector<long long>> seqs;  // symbol -> seqs in partition order
    std::size_t messages = 0;
    std::size_t missing = 0;     // in the files, not in Kafka
    std::size_t duplicates = 0;  // in Kafka more than once
    std::size_t unknown = 0;     // in Kafka, not in the files
    std::size_t reordered = 0;   // a seq not above the symbol's highest so far (duplicates aside)
    std::size_t split = 0;       // symbols found on more than one partition
    std::string detail;          // the first differences, for a failure's message
};

inline QuoteCheck check_quotes(const std::vector<mdagg::kafka_test::Message>& got, const harness::Output& files) {
    QuoteCheck c;
    std::map<std::string, std::set<std::int32_t>> partitions;
    std::ostringstream detail;
    int shown = 0;
    const auto note = [&](const std::string& what) {
        if (shown++ < 20) detail << what << "\n";
    };
    for (const auto& m : got) {
        const auto record = nlohmann::json::parse(m.value);
        EXPECT_EQ(record["type"], "quote");
        EXPECT_EQ(m.key, record["symbol"].get<std::string>());
        EXPECT_EQ(m.headers.at("type"), "quote");
        EXPECT_EQ(m.headers.at("source"), record["source"].get<std::string>());
        c.seqs[m.key].push_back(record["seq"].get<long long>());
        partitions[m.key].insert(m.partition);
        ++c.messages;
    }
    for (const auto& [symbol, parts] : partitions) c.split += parts.size() > 1;
    for (const auto& [symbol, seqs] : c.seqs) {
        std::set<long long> seen;
        long long highest = -1;
        for (std::size_t i = 0; i < seqs.size(); ++i) {
            if (!seen.insert(seqs[i]).second) {
                ++c.duplicates;
                note(symbol + ": seq " + std::to_string(seqs[i]) + " again at position " + std::to_string(i));
                continue;
            }
            if (seqs[i] <= highest) {
                ++c.reordered;
                note(symbol + ": seq " + std::to_string(seqs[i]) + " after " + std::to_string(highest));
            }
            highest = std::max(highest, seqs[i]);
        }
        const auto file = files.seqs.find(symbol);
        const std::set<long long> in_files =
            file == files.seqs.end() ? std::set<long long>() : std::set<long long>(file->second.begin(), file->second.end());
        for (long long s : seen)
            if (!in_files.count(s)) {
                ++c.unknown;
                note(symbol + ": seq " + std::to_string(s) + " in Kafka, not in the files");
            }
    }
    for (const auto& [symbol, seqs] : files.seqs) {
        const auto kafka = c.seqs.find(symbol);
        const std::set<long long> in_kafka =
            kafka == c.seqs.end() ? std::set<long long>() : std::set<long long>(kafka->second.begin(), kafka->second.end());
        for (long long s : seqs)
            if (!in_kafka.count(s)) {
                ++c.missing;
                note(symbol + ": seq " + std::to_string(s) + " in the files, not in Kafka");
            }
    }
    c.detail = detail.str();
    return c;
}

inline std::string describe(const mdagg::kafka_test::TopicContents& topic, const QuoteCheck& c) {
    std::ostringstream out;
    out << "log_records=" << topic.log_records << " read=" << topic.messages.size()
        << " complete=" << topic.complete << " pruned=" << topic.pruned << " missing=" << c.missing
        << " duplicates=" << c.duplicates << " unknown=" << c.unknown << " reordered=" << c.reordered
        << " split=" << c.split << "\n"
        << c.detail;
    return out.str();
}

}  // namespace kafka_e2e

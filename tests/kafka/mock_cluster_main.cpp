// mdagg-kafka-mock: a Kafka protocol cluster for the integration tests and the benchmark.
// Prints the bootstrap servers on the first line of stdout, then takes one command per line
// on stdin (or, with --control FILE, lines appended to FILE: a test's processes have no
// stdin) and answers each with a line "ok" or "error: ...":
//   down N | up N        a broker (N >= 1; -1 for every broker) refuses or accepts connections
//   leader TOPIC P N     broker N leads partition P of TOPIC
// It exits on "quit", at the end of stdin, or on SIGTERM.
#include "mock_cluster.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

namespace {

// Runs each whole line appended to `path` (polled: the file is small); stops when run() is false.
template <class Run>
void follow_file(const std::string& path, Run run) {
    std::size_t done = 0;  // bytes already run
    for (;;) {
        std::ifstream in(path, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (std::size_t nl; (nl = text.find('\n', done)) != std::string::npos; done = nl + 1)
            if (!run(text.substr(done, nl - done))) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace

int main(int argc, char** argv) {
    int brokers = 3;
    std::string control;
    std::vector<std::pair<std::string, int>> topics;  // --topic NAME:PARTITIONS
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--brokers" && i + 1 < argc) {
            brokers = std::atoi(argv[++i]);
        } else if (arg == "--control" && i + 1 < argc) {
            control = argv[++i];
        } else if (arg == "--topic" && i + 1 < argc) {
            const std::string spec = argv[++i];
            const auto colon = spec.find(':');
            topics.emplace_back(spec.substr(0, colon), colon == std::string::npos ? 1 : std::atoi(spec.c_str() + colon + 1));
        } else {
            std::cerr << "usage: mdagg-kafka-mock [--brokers N] [--topic NAME[:PARTITIONS]]... [--control FILE]\n";
            return 2;
        }
    }
    mdagg::kafka_test::MockCluster cluster(brokers);
    for (const auto& [name, partitions] : topics) cluster.create_topic(name, partitions, std::min(brokers, 3));
    std::cout << cluster.bootstraps() << std::endl;
    const auto run = [&](const std::string& line) {
        std::istringstream in(line);
        std::string command;
        in >> command;
        if (command == "quit") return false;
        try {
            if (command == "down" || command == "up") {
                int broker = 0;
                in >> broker;
                command == "down" ? cluster.set_down(broker) : cluster.set_up(broker);
            } else if (command == "leader") {
                std::string topic;
                int partition = 0, broker = 0;
                in >> topic >> partition >> broker;
                cluster.set_leader(topic, partition, broker);
            } else if (!command.empty()) {
                throw std::runtime_error("unknown command " + command);
            }
            std::cout << "ok" << std::endl;
        } catch (const std::exception& e) {
            std::cout << "error: " << e.what() << std::endl;
        }
        return true;
    };
    if (!control.empty()) {
        follow_file(control, run);
        return 0;
    }
    std::string line;
    while (std::getline(std::cin, line))
        if (!run(line)) break;
    return 0;
}

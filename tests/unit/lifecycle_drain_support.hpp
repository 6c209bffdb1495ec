#pragma once
// Shared by the drain's unit tests: stages that take simulated time and record what the
// supervisor asked of them, and a fixture that runs Supervisor::drain on them.
#include "stage.hpp"
#include "supervisor.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mdagg::lifecycle::drain_test {

inline const Clock::time_point t0{std::chrono::seconds(1000)};

// A stage that takes simulated time and records what the supervisor asked of it.
struct FakeStage final : Stage {
    FakeStage(std::string name, Clock::time_point& clock, std::vector<std::string>& calls)
        : name(std::move(name)), clock(clock), calls(calls) {}
    std::string name;
    Clock::time_point& clock;
    std::vector<std::string>& calls;
    Clock::duration stop_takes{}, drain_takes{}, close_takes{};
    StageOutcome outcome;
    StageDeadline drained_with{};
    Clock::time_point closed_with{};
    bool emergency_seen = false;
    mutable bool reported_incomplete = false;

    void start() override { calls.push_back(name + ".start"); }
    void stop_intake() override {
        calls.push_back(name + ".stop_intake");
        clock += stop_takes;
    }
    boost::asio::awaitable<StageOutcome> drain(StageDeadline d) override {
        calls.push_back(name + ".drain");
        drained_with = d;
        clock += drain_takes;
        co_return outcome;
    }
    boost::asio::awaitable<void> close(Clock::time_point deadline) override {
        calls.push_back(name + ".close");
        closed_with = deadline;
        clock += close_takes;
        co_return;
    }
    void emergency() override { emergency_seen = true; }
    void report(nlohmann::json& fields, bool incomplete) const override {
        fields[name] = true;
        reported_incomplete = incomplete;
    }
};

struct SupervisorTest : ::testing::Test {
    Clock::time_point clock = t0;
    std::vector<std::string> calls;
    FakeStage ingest{"ingest", clock, calls}, aggregation{"aggregation", clock, calls}, output{"output", clock, calls};
    Supervisor supervisor{ingest, aggregation, output, [this] { return clock; }};

    Supervisor::Report drain(const DrainPlan& plan) {
        boost::asio::io_context io;
        Supervisor::Report report;
        boost::asio::co_spawn(io, supervisor.drain(plan), [&](std::exception_ptr e, Supervisor::Report r) {
            if (e) std::rethrow_exception(e);
            report = std::move(r);
        });
        io.run();
        return report;
    }
};

}  // namespace mdagg::lifecycle::drain_test

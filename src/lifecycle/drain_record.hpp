// Private to lifecycle: the last drain's outcome, kept in <output.dir>/.mdagg-drain.json so
// that the next process can export it (mdagg_last_drain_* gauges): an overrun drain is
// visible after the restart that followed it.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace mdagg::lifecycle {

inline constexpr const char* drain_record_name = ".mdagg-drain.json";

struct DrainRecord {
    double duration_ms = 0;
    double budget_ms = 0;
    int exit_code = 0;
    std::int64_t records_abandoned = -1;  // -1: unknown (written as null by the watchdog)
    std::int64_t wall_time_ns = 0;        // when the drain ended, since the Unix epoch
    bool forced_by_watchdog = false;
};

// Replaces the record atomically: a temp file created with O_EXCL|O_NOFOLLOW next to it,
// fsync, rename, fsync of the directory. Allocates nothing and takes no lock, so the drain
// watchdog can call it while another thread hangs. Returns false on any failure.
// The drain and the watchdog write through temp files of their own, so one never removes the
// other's; `abandon`, when given and set by the time the temp is complete, skips the rename
// (the watchdog's record wins over a drain that was still writing when it fired).
inline constexpr const char* drain_temp_name = ".mdagg-drain.json.tmp";
inline constexpr const char* watchdog_temp_name = ".mdagg-drain.json.watchdog.tmp";
bool write_drain_record(const char* dir, const DrainRecord& record, const char* temp_name = drain_temp_name,
                        const std::atomic<bool>* abandon = nullptr) noexcept;

// The record a previous process left, or nullopt when there is none or it is unreadable.
std::optional<DrainRecord> read_drain_record(const std::string& dir);

}  // namespace mdagg::lifecycle

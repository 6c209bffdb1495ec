// Shared by the sink's unit tests (tests/unit/sink_*_test.cpp): a universe of names, quotes
// and bars to write, a temporary output directory, and readers for what the sink wrote.
#pragma once

#include <mdagg/sink.hpp>

#include "detail.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>
#include <zstd.h>
#include <unistd.h>

namespace mdagg::sink_test {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono;
using namespace std::chrono_literals;

inline Decimal D(const char* text) {
    const auto d = Decimal::parse(text);
    EXPECT_TRUE(d.has_value()) << text;
    return d.value_or(Decimal{});
}

inline std::int64_t ns_at(sys_days day, nanoseconds since_midnight) {
    return (day.time_since_epoch() + since_midnight).count();
}

inline Quote full_quote() {
    Quote q;
    q.source = 0;
    q.symbol = 0;
    q.bid = D("101.25");
    q.ask = D("101.26");
    q.bid_size = D("12.50");
    q.ask_size = D("8.00");
    q.has_bid_size = true;
    q.has_ask_size = true;
    q.exchange_time_ns = ns_at(2025y / 11 / 24, 16h + 1ns);
    q.receive_time_ns = ns_at(2025y / 11 / 24, 16h + 123456789ns);
    q.seq = 412;
    return q;
}

inline const Universe universe{{"sim", "venue2"}, {"STOCK_7", "ETH-USD"}};

// ---- FileSink -----------------------------------------------------------------------------

class TempDir {
public:
    TempDir() {
        static int counter = 0;
        path_ = fs::temp_directory_path() /
                ("mdagg-sink-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// Output files: dot-files are state (the directory lock, other modules' state files).
inline std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (!e.path().filename().string().starts_with('.')) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

inline fs::path only_file(const fs::path& dir, const std::string& prefix) {
    fs::path found;
    int n = 0;
    for (const fs::path& p : files_in(dir)) {
        if (p.filename().string().rfind(prefix, 0) == 0) {
            found = p;
            ++n;
        }
    }
    EXPECT_EQ(n, 1) << prefix;
    return found;
}

inline std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every line parses and the file ends with a newline; returns the parsed lines.
inline std::vector<json> lines_of(const fs::path& p) {
    const std::string text = slurp(p);
    std::vector<json> out;
    if (text.empty()) return out;
    EXPECT_EQ(text.back(), '\n') << p;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t nl = text.find('\n', start);
        if (nl == std::string::npos) {
            ADD_FAILURE() << "torn last line in " << p;
            break;
        }
        out.push_back(json::parse(text.substr(start, nl - start)));
        start = nl + 1;
    }
    return out;
}

template <class Pred>
inline bool eventually(Pred pred, milliseconds limit = 10s) {
    const auto deadline = steady_clock::now() + limit;
    while (!pred()) {
        if (steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

inline Bar some_bar(std::uint64_t i) {
    Bar b;
    b.symbol = 1;
    b.start_ns = static_cast<std::int64_t>(i) * 1'000'000'000;
    b.end_ns = b.start_ns + 1'000'000'000;
    b.open = b.high = b.low = b.close = D("2.5");
    b.updates = i;
    return b;
}

inline Quote numbered_quote(std::int64_t i) {
    Quote q = full_quote();
    q.seq = i;
    return q;
}

// <kind>-YYYYMMDDTHHMMSS.mmmZ-<pid>-<seq><suffix>
inline bool is_output_name(const fs::path& p, const std::string& kind, const std::string& suffix) {
    const std::string name = p.filename().string();
    const std::string pid = std::to_string(::getpid());
    const std::string shape = kind + "-########T######.###Z-" + pid + "-######" + suffix;
    if (name.size() != shape.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const bool ok = shape[i] == '#' ? (name[i] >= '0' && name[i] <= '9') : name[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}


// ---- overflow ---------------------------------------------------------------------------------

inline std::size_t quote_line_size() {
    std::string one;
    append_quote_json(one, numbered_quote(100), universe);  // same width as seq 100..999
    return one.size();
}

// ---- rotation, retention ----------------------------------------------------------------------

inline std::vector<fs::path> finished(const fs::path& dir, const std::string& prefix) {
    std::vector<fs::path> out;
    for (const fs::path& p : files_in(dir))
        if (p.filename().string().rfind(prefix, 0) == 0 && p.extension() != ".part") out.push_back(p);
    return out;  // sorted by name, which is by time
}


// ---- compression --------------------------------------------------------------------------

inline std::string gunzip(const fs::path& p) {
    gzFile f = gzopen(p.c_str(), "rb");
    EXPECT_NE(f, nullptr);
    std::string out;
    char buf[65536];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    EXPECT_EQ(n, 0);
    gzclose(f);
    return out;
}

inline std::string unzstd(const fs::path& p) {
    const std::string in = slurp(p);
    const auto size = ZSTD_getFrameContentSize(in.data(), in.size());
    EXPECT_NE(size, ZSTD_CONTENTSIZE_ERROR);
    std::string out;
    ZSTD_DStream* ds = ZSTD_createDStream();
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    char buf[65536];
    while (input.pos < input.size) {
        ZSTD_outBuffer output{buf, sizeof buf, 0};
        const auto rc = ZSTD_decompressStream(ds, &output, &input);
        EXPECT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
        if (ZSTD_isError(rc)) break;
        out.append(buf, output.pos);
    }
    ZSTD_freeDStream(ds);
    return out;
}


// ---- disk faults ----------------------------------------------------------------------------

// dir's lock file names this process, and a second sink there (another daemon) is refused
// naming it: flock() conflicts between open file descriptions, also within one process.
inline void expect_locked_by_this_process(const fs::path& dir) {
    EXPECT_EQ(slurp(dir / ".mdagg.lock"), std::to_string(::getpid()) + "\n");
    FileSink second(universe, {dir.string()});
    try {
        second.open();
        ADD_FAILURE() << "a second sink opened a locked directory";
    } catch (const std::system_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("pid " + std::to_string(::getpid())), std::string::npos) << what;
        EXPECT_NE(what.find(dir.string()), std::string::npos) << what;
    }
}


// ---- durability and directory safety ------------------------------------------------------

// Replaces one syscall of the sink's seam for a test's lifetime; install before a sink opens,
// and let it go only after every sink of the test is gone.
class FileOpsOverride {
public:
    FileOpsOverride() : saved_(sink_detail::file_ops()) {}
    ~FileOpsOverride() { sink_detail::file_ops() = saved_; }
    FileOpsOverride(const FileOpsOverride&) = delete;
    FileOpsOverride& operator=(const FileOpsOverride&) = delete;

private:
    sink_detail::FileOps saved_;
};

inline std::atomic<bool> fail_fdatasync{false};
inline std::atomic<int> fdatasync_failures{0};

inline int fdatasync_failing_on_demand(int fd) {
    if (fail_fdatasync.load()) {
        fdatasync_failures.fetch_add(1);
        errno = EIO;
        return -1;
    }
    return ::fdatasync(fd);
}

inline std::vector<fs::path> with_suffix(const fs::path& dir, const std::string& prefix, const std::string& suffix) {
    std::vector<fs::path> out;
    for (const fs::path& p : files_in(dir)) {
        const std::string name = p.filename().string();
        if (name.starts_with(prefix) && name.ends_with(suffix)) out.push_back(p);
    }
    return out;
}

}  // namespace mdagg::sink_test

// JsonlSink: the strand formats and appends under a mutex held for a memcpy; one writer
// thread owns the files and does every syscall, so the strand never waits for the disk.
#include <mdagg/sink.hpp>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <iterator>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mdagg {
namespace {

enum Kind { quotes = 0, bars = 1, kinds = 2 };
constexpr const char* kind_name[kinds] = {"quotes", "bars"};

struct File {
    std::string part_path;
    std::string final_path;
    int fd = -1;
    // Handed-over bytes; [0, done) already reached the file. A failed write leaves the rest
    // here so the next round resumes at the exact byte, never repeating or skipping one.
    std::string buf;
    std::size_t done = 0;
    std::uint64_t size = 0;      // bytes in the file
    std::uint64_t line_end = 0;  // file offset just past the last complete line
};

// Everything the writer thread touches. Shared so a writer abandoned at a close() deadline
// keeps it alive after the JsonlSink is gone.
struct State {
    std::size_t max_bytes = 0;
    std::string dir;

    std::mutex m;
    std::condition_variable wake;      // writer: flush or stop requested
    std::condition_variable finished_cv;
    // Guarded by m.
    std::string pending[kinds];
    std::size_t held = 0;  // pending bytes plus bytes the writer has not written yet
    bool opened = false;
    bool flush_requested = false;
    bool stop = false;
    bool finished = false;

    // Writer thread only, once started (open() fills them before starting it).
    File files[kinds];

    std::atomic<std::uint64_t> records_written{0};
    std::atomic<std::uint64_t> bytes_written{0};
    std::atomic<std::uint64_t> records_dropped{0};
    std::atomic<std::uint64_t> write_errors{0};
};

std::uint64_t count_lines(const char* first, const char* last) {
    return static_cast<std::uint64_t>(std::count(first, last, '\n'));
}

// Writes what f holds after appending `incoming`; stops at the first error, keeping the rest.
void write_round(State& st, File& f, std::string& incoming) {
    if (f.done == f.buf.size()) {
        f.buf.clear();
        f.done = 0;
        f.buf.swap(incoming);  // common case: no copy, capacities cycle back to pending
    } else {
        f.buf.erase(0, f.done);
        f.done = 0;
        f.buf += incoming;
    }
    incoming.clear();

    const std::size_t before = f.done;
    while (f.done < f.buf.size()) {
        const ssize_t n = ::write(f.fd, f.buf.data() + f.done, f.buf.size() - f.done);
        if (n > 0) {
            f.done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            // n == 0 cannot make progress either; retrying now would spin, the next flush retries.
            st.write_errors.fetch_add(1, std::memory_order_relaxed);
            break;
        }
    }
    const std::size_t wrote = f.done - before;
    if (wrote == 0) return;
    const char* first = f.buf.data() + before;
    const char* last = f.buf.data() + f.done;
    st.records_written.fetch_add(count_lines(first, last), std::memory_order_relaxed);
    st.bytes_written.fetch_add(wrote, std::memory_order_relaxed);
    const char* nl = std::find(std::make_reverse_iterator(last), std::make_reverse_iterator(first),
                               '\n')
                         .base();
    if (nl != first) f.line_end = f.size + static_cast<std::uint64_t>(nl - first);
    f.size += wrote;
    std::lock_guard lk(st.m);
    st.held -= wrote;
}

void finalize(State& st) {
    for (File& f : st.files) {
        if (f.done < f.buf.size()) {
            // The last write failed: those records are lost. Count them, and cut a torn line
            // off so every line in the finished file parses.
            const char* rest = f.buf.data() + f.done;
            st.records_dropped.fetch_add(count_lines(rest, f.buf.data() + f.buf.size()),
                                         std::memory_order_relaxed);
            if (f.size != f.line_end &&
                ::ftruncate(f.fd, static_cast<off_t>(f.line_end)) != 0) {
                st.write_errors.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (::fdatasync(f.fd) != 0) st.write_errors.fetch_add(1, std::memory_order_relaxed);
        if (::close(f.fd) != 0) st.write_errors.fetch_add(1, std::memory_order_relaxed);
        f.fd = -1;
        if (::rename(f.part_path.c_str(), f.final_path.c_str()) != 0) {
            st.write_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }
    // The renames are only durable once the directory itself is synced.
    const int dfd = ::open(st.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) st.write_errors.fetch_add(1, std::memory_order_relaxed);
    if (dfd >= 0) ::close(dfd);
}

void writer_main(std::shared_ptr<State> st) {
    std::string incoming[kinds];
    std::unique_lock lk(st->m);
    for (;;) {
        st->wake.wait(lk, [&] { return st->flush_requested || st->stop; });
        // Producers drop once stop is set, so this take is the last when stop is seen.
        const bool last = st->stop;
        st->flush_requested = false;
        for (int k = 0; k < kinds; ++k) incoming[k].swap(st->pending[k]);
        lk.unlock();
        for (int k = 0; k < kinds; ++k) write_round(*st, st->files[k], incoming[k]);
        if (last) {
            finalize(*st);
            lk.lock();
            st->finished = true;
            st->finished_cv.notify_all();
            return;
        }
        lk.lock();
    }
}

// YYYYMMDDTHHMMSSZ of the current UTC second.
std::string utc_stamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    return std::string(buf, std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm));
}

bool exists(const std::string& path) {
    struct stat sb;
    return ::lstat(path.c_str(), &sb) == 0;
}

}  // namespace

struct JsonlSink::Impl {
    Impl(const Universe& u, const SinkOptions& options) : universe(u), handoff_bytes(options.handoff_bytes) {
        st->max_bytes = options.max_buffer_bytes;
        st->dir = options.dir.empty() ? "." : options.dir;
    }

    const Universe& universe;
    const std::size_t handoff_bytes;
    std::shared_ptr<State> st = std::make_shared<State>();
    std::thread writer;

    void append(Kind kind, const std::string& line) {
        bool wake_writer = false;
        {
            std::lock_guard lk(st->m);
            if (st->stop || st->held + line.size() > st->max_bytes) {
                st->records_dropped.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            auto& pending = st->pending[kind];
            pending += line;
            st->held += line.size();
            // A full chunk goes to the writer before the flush timer, which bounds the memory
            // held between flushes (2,000 pollers at 50 ms produce ~10 MB of quotes a second).
            if (st->opened && !st->flush_requested && pending.size() >= handoff_bytes) {
                st->flush_requested = true;
                wake_writer = true;
            }
        }
        if (wake_writer) st->wake.notify_one();
    }

    // Waits for the writer to finalize; no deadline means as long as it takes.
    bool finish(const std::chrono::steady_clock::time_point* deadline) {
        {
            std::lock_guard lk(st->m);
            st->stop = true;  // also refuses records arriving after close
            // Never started, already joined, or abandoned at an earlier deadline: waiting again
            // (from the destructor, say) would bring back the hang the deadline was for.
            if (!writer.joinable()) return !st->opened || st->finished;
        }
        st->wake.notify_one();
        bool done = true;
        {
            std::unique_lock lk(st->m);
            const auto is_finished = [&] { return st->finished; };
            if (deadline) {
                done = st->finished_cv.wait_until(lk, *deadline, is_finished);
            } else {
                st->finished_cv.wait(lk, is_finished);
            }
        }
        if (writer.joinable()) {
            if (done) {
                writer.join();
            } else {
                writer.detach();
            }
        }
        return done;
    }
};

JsonlSink::JsonlSink(const Universe& universe, SinkOptions options)
    : impl_(std::make_unique<Impl>(universe, options)) {}

JsonlSink::~JsonlSink() {
    // Without close() the data still has to reach its final name, however long that takes.
    impl_->finish(nullptr);
}

void JsonlSink::open() {
    State& st = *impl_->st;
    {
        std::lock_guard lk(st.m);
        if (st.opened || st.stop) throw std::logic_error("JsonlSink::open: already opened or closed");
    }
    std::error_code ec;
    std::filesystem::create_directories(st.dir, ec);
    if (ec) throw std::system_error(ec, "cannot create output directory " + st.dir);

    // The pid keeps concurrent daemons apart; the counter keeps a second sink of this process
    // opened within the same second from replacing the first one's finished files on rename.
    const std::string base = utc_stamp() + "-" + std::to_string(::getpid());
    for (int attempt = 0;; ++attempt) {
        const std::string stem = attempt == 0 ? base : base + "-" + std::to_string(attempt);
        int created = 0;
        int err = 0;
        for (; created < kinds; ++created) {
            File& f = st.files[created];
            f.final_path = st.dir + "/" + kind_name[created] + "-" + stem + ".jsonl";
            f.part_path = f.final_path + ".part";
            if (exists(f.final_path)) {
                err = EEXIST;
                break;
            }
            f.fd = ::open(f.part_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (f.fd < 0) {
                err = errno;
                break;
            }
        }
        if (created == kinds) break;
        for (int k = 0; k < created; ++k) {
            ::close(st.files[k].fd);
            st.files[k].fd = -1;
            ::unlink(st.files[k].part_path.c_str());
        }
        if (err != EEXIST || attempt == 99) {
            throw std::system_error(err, std::generic_category(),
                                    "cannot create " + st.files[created].part_path);
        }
    }

    try {
        impl_->writer = std::thread(writer_main, impl_->st);
    } catch (...) {
        for (File& f : st.files) {
            ::close(f.fd);
            f.fd = -1;
            ::unlink(f.part_path.c_str());
        }
        throw;
    }
    std::lock_guard lk(st.m);
    st.opened = true;
    // Records buffered before open() wait for the first flush like any others.
}

void JsonlSink::on_quote(const Quote& quote) {
    // Formatting happens outside the lock; the scratch keeps its capacity, so no allocation.
    thread_local std::string line;
    line.clear();
    append_quote_json(line, quote, impl_->universe);
    impl_->append(quotes, line);
}

void JsonlSink::on_bar(const Bar& bar) {
    thread_local std::string line;
    line.clear();
    append_bar_json(line, bar, impl_->universe);
    impl_->append(bars, line);
}

void JsonlSink::on_stale(const StaleMark& mark) {
    // With the bars: both describe the consolidated view, and the bars file always exists.
    thread_local std::string line;
    line.clear();
    append_stale_json(line, mark, impl_->universe);
    impl_->append(bars, line);
}

void JsonlSink::flush() {
    {
        std::lock_guard lk(impl_->st->m);
        if (!impl_->st->opened || impl_->st->stop) return;
        impl_->st->flush_requested = true;
    }
    impl_->st->wake.notify_one();
}

bool JsonlSink::close(std::chrono::steady_clock::time_point deadline) {
    return impl_->finish(&deadline);
}

SinkStats JsonlSink::stats() const {
    const State& st = *impl_->st;
    SinkStats s;
    s.records_written = st.records_written.load(std::memory_order_relaxed);
    s.bytes_written = st.bytes_written.load(std::memory_order_relaxed);
    s.records_dropped = st.records_dropped.load(std::memory_order_relaxed);
    s.write_errors = st.write_errors.load(std::memory_order_relaxed);
    return s;
}

}  // namespace mdagg

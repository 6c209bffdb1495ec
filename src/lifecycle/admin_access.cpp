#include "admin_access.hpp"

#include <mdagg/lifecycle.hpp>
#include <mdagg/observe.hpp>

#include <boost/asio/ip/address.hpp>

namespace mdagg::lifecycle {
namespace {

double to_ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

bool is_loopback(const std::string& host) {
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec) return false;
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).is_loopback();
    return address.is_loopback();
}

AdminAccess::AdminAccess(boost::asio::io_context& io, const Config& config, admin::Backend& backend)
    : io_(io), config_(config), backend_(backend) {}

void AdminAccess::start() {
    std::string token;
    const auto stamp = file_stamp(config_.admin.token_file);
    try {
        token = admin_token(config_);
    } catch (const ConfigError& e) {
        throw StartupError(e.what());
    }
    // admin_exposure_error counts a token file by its presence; an empty one opens nothing.
    if (token.empty() && !config_.admin.allow_unauthenticated && !is_loopback(config_.admin.host))
        throw StartupError("admin.token_file " + config_.admin.token_file +
                           " is empty and admin.listen is not a loopback address: refusing to serve "
                           "POST /admin/* without a token (admin.allow_unauthenticated: true allows it)");
    server_ = std::make_unique<admin::Server>(
        io_, admin::ServerOptions{config_.admin.host, config_.admin.port, token}, backend_);
    std::uint16_t port = 0;
    try {
        port = server_->start();
    } catch (const std::system_error& e) {
        throw StartupError(e.what());
    }
    log::info("admin listening", {{"host", config_.admin.host},
                                  {"port", port},
                                  {"auth", token.empty() ? "none" : "bearer"},
                                  {"stall_after_ms", to_ms(config_.admin.stall_after)}});
    if (!config_.admin.token_env.empty() && token.empty())
        log::warn("admin token variable is unset or empty: POST /admin/* need no token",
                  {{"token_env", config_.admin.token_env}});
    if (token.empty() && !is_loopback(config_.admin.host))
        log::warn("admin server reachable from the network without a token (admin.allow_unauthenticated)",
                  {{"host", config_.admin.host}});
    if (!config_.admin.token_file.empty() && token.empty())
        log::warn("admin.token_file is empty: POST /admin/* need no token until it holds one",
                  {{"token_file", config_.admin.token_file}});
    token_watch_.watch(config_.admin.token_file, stamp);  // server_ is set: the watcher may use it
}

// The token on SIGHUP; between reloads token_watch_ follows the file. An unreadable file
// keeps the token in effect: a reload must never switch authentication off by accident.
// A reload or a rewritten token file may not open a port reachable from the network: the
// start-up refused that (admin_exposure_error), so an empty token keeps the current one.
// Any thread (the token file watcher calls it).
void AdminAccess::install_token(std::string token) {
    if (!server_) return;
    if (token.empty() && !config_.admin.allow_unauthenticated && !is_loopback(config_.admin.host)) {
        log::error("refusing an empty admin token on a non-loopback admin.listen: keeping the current token",
                   {{"listen_host", config_.admin.host}});
        return;
    }
    server_->set_token(std::move(token));
}

void AdminAccess::reload(const Config& loaded) {
    if (!server_) return;
    try {
        const auto stamp = file_stamp(loaded.admin.token_file);
        install_token(admin_token(loaded));
        token_watch_.watch(loaded.admin.token_file, stamp);
    } catch (const ConfigError& e) {
        log::error("cannot read admin.token_file: keeping the current token", {{"error", e.what()}});
        token_watch_.watch(loaded.admin.token_file, std::nullopt);  // picked up once readable
    }
}

void AdminAccess::stop() {
    if (server_) server_->stop();
}

}  // namespace mdagg::lifecycle

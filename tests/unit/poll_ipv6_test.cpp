// IPv6 on the poll path: a connection tries the resolved addresses in the resolver's order,
// IPv4 and IPv6 alike, moving past one that refuses; requests to an IPv6 host bracket it.
#include <mdagg/http.hpp>

#include "transport.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using mdagg::detail::Task;
using mdagg::detail::TcpTransport;

// An address on which nothing listens: bound, then closed, so a connect is refused.
tcp::endpoint refusing(const asio::ip::address& address) {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(address, 0));
    const tcp::endpoint ep = a.local_endpoint();
    a.close();
    return ep;
}

Task<void> connect_task(TcpTransport& t, std::vector<tcp::endpoint> endpoints, boost::system::error_code& result) {
    result = co_await t.connect(endpoints, [] { return false; });
}

struct Done {
    int calls = 0;
    static void on(void* self, std::exception_ptr) { ++static_cast<Done*>(self)->calls; }
};

// Connects through `endpoints` and returns the address the listener saw the connection on.
std::optional<tcp::endpoint> connected_to(asio::io_context& io, tcp::acceptor& listener,
                                          std::vector<tcp::endpoint> endpoints) {
    TcpTransport transport(io.get_executor(), 4096);
    boost::system::error_code ec = asio::error::would_block;
    Done done;
    tcp::socket accepted(io);
    listener.async_accept(accepted, [](boost::system::error_code) {});
    connect_task(transport, std::move(endpoints), ec).spawn(io.get_executor(), &Done::on, &done);
    io.restart();
    io.run_for(std::chrono::seconds(10));
    EXPECT_EQ(done.calls, 1);
    if (ec) {
        ADD_FAILURE() << ec.message();
        return std::nullopt;
    }
    return accepted.local_endpoint();
}

TEST(PollIpv6, AddressesAreTriedInTheResolversOrderPastOneThatRefuses) {
    asio::io_context io;
    const auto v6 = asio::ip::make_address("::1");
    const auto v4 = asio::ip::make_address("127.0.0.1");
    tcp::acceptor on_v6(io, tcp::endpoint(v6, 0));
    const auto got6 = connected_to(io, on_v6, {refusing(v4), on_v6.local_endpoint()});
    ASSERT_TRUE(got6);
    EXPECT_TRUE(got6->address().is_v6());

    tcp::acceptor on_v4(io, tcp::endpoint(v4, 0));
    const auto got4 = connected_to(io, on_v4, {refusing(v6), on_v4.local_endpoint()});
    ASSERT_TRUE(got4);
    EXPECT_TRUE(got4->address().is_v4());
}

TEST(PollIpv6, TheFirstAddressThatAnswersIsTheOneUsed) {
    asio::io_context io;
    tcp::acceptor on_v6(io, tcp::endpoint(asio::ip::make_address("::1"), 0));
    tcp::acceptor on_v4(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    // Both listen: the first in the list wins, whatever its family.
    const auto got = connected_to(io, on_v6, {on_v6.local_endpoint(), on_v4.local_endpoint()});
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->address().is_v6());
}

}  // namespace

"""The local lab: two systemd LB nodes, four workers and a client, each in its own network
namespace on one bridge, all in 198.18.0.0/24 (the benchmarking range). Root and Linux only."""

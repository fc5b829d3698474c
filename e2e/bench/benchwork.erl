%% benchwork is the Erlang side of the nodewire benchmark harness (e2e/bench).
%% The harness compiles it at run time and loads it on both nodes of a row
%% (-pa). Every function runs on the measuring node and times with
%% erlang:monotonic_time, so the figures are what Erlang processes see, not
%% the harness's stdin/stdout round trips. Each returns plain terms printed
%% with ~w: integers (bytes, nanoseconds) and lists of them.
-module(benchwork).
-export([sink/2, echo/0, stream/6, pingpong/4, erpc_rtt/3,
         connected/1, disconnect/2, cold/2, goodput/6, erpc_for/6]).

%% sink acknowledges every message, so a sender can keep a fixed number in
%% flight.
sink(From, Ref) ->
    receive
        {d, Ref, _Bin} ->
            From ! {a, Ref},
            sink(From, Ref);
        {stop, Ref} ->
            ok
    after 120000 ->
            ok
    end.

%% echo sends every message back: the other end of pingpong.
echo() ->
    receive
        {From, Ref, Bin} ->
            From ! {Ref, Bin},
            echo();
        stop ->
            ok
    after 120000 ->
            ok
    end.

%% stream runs Senders processes, each sending Size-byte binaries to its own
%% sink on To with Window unacknowledged, for DurMs; then each waits for its
%% last acknowledgement. It returns {Bytes, Nanoseconds}: everything
%% acknowledged, from the common start to the last acknowledgement. Sinks are
%% set up and one tiny message exchanged before the clock starts, so the
%% connection setup is not part of the figure.
stream(To, Senders, Size, Window, DurMs, TimeoutMs) ->
    pong = net_adm:ping(To),
    Parent = self(),
    Bin = rand:bytes(Size),
    Ws = [spawn_link(fun() -> sender(Parent, To, Bin, Window, TimeoutMs) end)
          || _ <- lists:seq(1, Senders)],
    [receive {ready, W} -> ok after TimeoutMs -> error(sink_setup_timeout) end || W <- Ws],
    T0 = erlang:monotonic_time(),
    Deadline = T0 + erlang:convert_time_unit(DurMs, millisecond, native),
    [W ! {go, Deadline} || W <- Ws],
    Res = [receive {done, W, B, T} -> {B, T} after DurMs + TimeoutMs -> error(sender_timeout) end
           || W <- Ws],
    Bytes = lists:sum([B || {B, _} <- Res]),
    T1 = lists:max([T || {_, T} <- Res]),
    {Bytes, erlang:convert_time_unit(T1 - T0, native, nanosecond)}.

sender(Parent, To, Bin, Window, TimeoutMs) ->
    Ref = make_ref(),
    Sink = spawn(To, ?MODULE, sink, [self(), Ref]),
    MRef = erlang:monitor(process, Sink),
    Sink ! {d, Ref, <<0>>},
    receive {a, Ref} -> ok after TimeoutMs -> error(sink_timeout) end,
    Parent ! {ready, self()},
    Deadline = receive {go, D} -> D end,
    [Sink ! {d, Ref, Bin} || _ <- lists:seq(1, Window)],
    Acked = pump(Sink, Ref, Bin, MRef, TimeoutMs, Deadline, Window, 0),
    T = erlang:monotonic_time(),
    Sink ! {stop, Ref},
    erlang:demonitor(MRef, [flush]),
    Parent ! {done, self(), Acked * byte_size(Bin), T}.

%% pump refills the window on every acknowledgement until Deadline, then
%% drains it. It returns how many Bin messages were acknowledged.
pump(_Sink, _Ref, _Bin, _MRef, _TimeoutMs, _Deadline, 0, Acked) ->
    Acked;
pump(Sink, Ref, Bin, MRef, TimeoutMs, Deadline, InFlight, Acked) ->
    receive
        {a, Ref} ->
            case erlang:monotonic_time() < Deadline of
                true ->
                    Sink ! {d, Ref, Bin},
                    pump(Sink, Ref, Bin, MRef, TimeoutMs, Deadline, InFlight, Acked + 1);
                false ->
                    pump(Sink, Ref, Bin, MRef, TimeoutMs, Deadline, InFlight - 1, Acked + 1)
            end;
        {'DOWN', MRef, process, _, Why} ->
            error({sink_down, Why})
    after TimeoutMs ->
            error({timeout, Acked})
    end.

%% pingpong times Count round trips of a Size-byte binary to an echo process
%% on To (after 10 untimed ones) and returns them in nanoseconds, sorted.
pingpong(To, Size, Count, TimeoutMs) ->
    pong = net_adm:ping(To),
    Echo = spawn(To, ?MODULE, echo, []),
    Bin = rand:bytes(Size),
    Ref = make_ref(),
    One = fun() ->
                  T0 = erlang:monotonic_time(),
                  Echo ! {self(), Ref, Bin},
                  receive {Ref, Bin} -> ok after TimeoutMs -> error(echo_timeout) end,
                  erlang:monotonic_time() - T0
          end,
    [One() || _ <- lists:seq(1, 10)],
    Ts = [One() || _ <- lists:seq(1, Count)],
    Echo ! stop,
    lists:sort([erlang:convert_time_unit(T, native, nanosecond) || T <- Ts]).

%% erpc_rtt times Count erpc:call(To, erlang, node, []) round trips (after 10
%% untimed ones) and returns them in nanoseconds, sorted.
erpc_rtt(To, Count, TimeoutMs) ->
    pong = net_adm:ping(To),
    One = fun() ->
                  T0 = erlang:monotonic_time(),
                  To = erpc:call(To, erlang, node, [], TimeoutMs),
                  erlang:monotonic_time() - T0
          end,
    [One() || _ <- lists:seq(1, 10)],
    Ts = [One() || _ <- lists:seq(1, Count)],
    lists:sort([erlang:convert_time_unit(T, native, nanosecond) || T <- Ts]).

%% connected tells whether this node has any connection to Node, set up or
%% being set up.
connected(Node) ->
    lists:member(Node, nodes(connected)).

%% disconnect drops the connection to Node and waits (up to TimeoutMs) until
%% this side has none left.
disconnect(Node, TimeoutMs) ->
    _ = erlang:disconnect_node(Node),
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    wait_gone(Node, Deadline).

wait_gone(Node, Deadline) ->
    case connected(Node) of
        false ->
            ok;
        true ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error({still_connected, Node});
                false ->
                    receive after 1 -> ok end, % poll interval, bounded by Deadline
                    wait_gone(Node, Deadline)
            end
    end.

%% cold times one net_adm:ping to Node, which must not be connected: the
%% EPMD lookup, the connection and the distribution handshake. It returns
%% the time in nanoseconds, or already_connected when something connected
%% the nodes since the caller checked (the caller then disconnects again).
cold(Node, _TimeoutMs) ->
    case connected(Node) of
        true ->
            already_connected;
        false ->
            T0 = erlang:monotonic_time(),
            pong = net_adm:ping(Node),
            erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond)
    end.

%% goodput is the bulk transfer of the real-network matrix (e2e/bench/wan.go):
%% one sender keeps Window Size-byte binaries unacknowledged on a sink on To
%% for DurMs and returns {Bytes, Nanoseconds, Drain}: the bytes acknowledged
%% before the deadline and the time to it. Unlike stream it does not count
%% the drain (at a few hundred kB/s the window alone takes many seconds), but
%% it waits up to DrainMs for it so the next measurement finds a quiet link;
%% Drain says how that went: drained, not_drained or lost. A connection that
%% goes down during the timed part raises {sink_down, Why}; no
%% acknowledgement of the first, tiny message within AckTimeoutMs raises
%% sink_timeout.
goodput(To, Size, Window, DurMs, AckTimeoutMs, DrainMs) ->
    Bin = rand:bytes(Size),
    Ref = make_ref(),
    Sink = spawn(To, ?MODULE, sink, [self(), Ref]),
    MRef = erlang:monitor(process, Sink),
    Sink ! {d, Ref, <<0>>},
    receive
        {a, Ref} -> ok;
        {'DOWN', MRef, process, _, Why0} -> error({sink_down, Why0})
    after AckTimeoutMs -> error(sink_timeout)
    end,
    T0 = erlang:monotonic_time(),
    Deadline = T0 + erlang:convert_time_unit(DurMs, millisecond, native),
    [Sink ! {d, Ref, Bin} || _ <- lists:seq(1, Window)],
    Acked = gp_pump(Sink, Ref, Bin, MRef, Deadline, 0),
    T1 = erlang:monotonic_time(),
    Drain = gp_drain(Ref, MRef, Window, erlang:monotonic_time(millisecond) + DrainMs),
    Sink ! {stop, Ref},
    erlang:demonitor(MRef, [flush]),
    {Acked * byte_size(Bin), erlang:convert_time_unit(T1 - T0, native, nanosecond), Drain}.

%% gp_pump refills the window on every acknowledgement until Deadline and
%% returns how many were acknowledged before it; Window stay in flight.
gp_pump(Sink, Ref, Bin, MRef, Deadline, Acked) ->
    Left = erlang:convert_time_unit(Deadline - erlang:monotonic_time(), native, millisecond),
    receive
        {a, Ref} when Left > 0 ->
            Sink ! {d, Ref, Bin},
            gp_pump(Sink, Ref, Bin, MRef, Deadline, Acked + 1);
        {'DOWN', MRef, process, _, Why} ->
            error({sink_down, Why})
    after max(0, Left) ->
            Acked
    end.

gp_drain(_Ref, _MRef, 0, _Until) ->
    drained;
gp_drain(Ref, MRef, InFlight, Until) ->
    Left = max(0, Until - erlang:monotonic_time(millisecond)),
    receive
        {a, Ref} -> gp_drain(Ref, MRef, InFlight - 1, Until);
        {'DOWN', MRef, process, _, _} -> lost
    after Left -> not_drained
    end.

%% erpc_for times erpc:call(To, erlang, node, []) round trips (after 3
%% untimed ones) until MaxCalls are done, or MaxMs have passed, or at least
%% MinCalls in at least MinMs; it returns them in nanoseconds, sorted. A
%% call that gets no answer within CallTimeoutMs raises {erpc, timeout}.
erpc_for(To, MinCalls, MaxCalls, MinMs, MaxMs, CallTimeoutMs) ->
    One = fun() ->
                  T0 = erlang:monotonic_time(),
                  To = erpc:call(To, erlang, node, [], CallTimeoutMs),
                  erlang:monotonic_time() - T0
          end,
    [One() || _ <- lists:seq(1, 3)],
    Start = erlang:monotonic_time(millisecond),
    Ts = erpc_loop(One, Start, MinCalls, MaxCalls, MinMs, MaxMs, []),
    lists:sort([erlang:convert_time_unit(T, native, nanosecond) || T <- Ts]).

erpc_loop(One, Start, MinCalls, MaxCalls, MinMs, MaxMs, Acc) ->
    N = length(Acc),
    Elapsed = erlang:monotonic_time(millisecond) - Start,
    case N >= MaxCalls orelse Elapsed >= MaxMs orelse (N >= MinCalls andalso Elapsed >= MinMs) of
        true -> Acc;
        false -> erpc_loop(One, Start, MinCalls, MaxCalls, MinMs, MaxMs, [One() | Acc])
    end.

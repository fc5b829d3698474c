%% benchwork is the Erlang side of the nodewire benchmark harness (e2e/bench).
%% The harness compiles it at run time and loads it on both nodes of a row
%% (-pa). Every function runs on the measuring node and times with
%% erlang:monotonic_time, so the figures are what Erlang processes see, not
%% the harness's stdin/stdout round trips. Each returns plain terms printed
%% with ~w: integers (bytes, nanoseconds) and lists of them.
-module(benchwork).
-export([sink/2, echo/0, stream/6, pingpong/4, erpc_rtt/3,
         connected/1, disconnect/2, cold/2, cold_steps/2, goodput/6, erpc_for/6,
         tls_info/1]).

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

%% tls_info says what the inet_tls_dist connection to Node negotiated:
%% '<protocol> <cipher suite>', e.g. 'tlsv1.3 TLS_AES_256_GCM_SHA384'. The
%% distribution controller of a TLS connection is the ssl sender process; the
%% connection (receiver) process that ssl:connection_information asks is its
%% sibling under the connection's supervisor (OTP 24 and later). It returns
%% not_tls for a connection whose controller is a port (plain TCP).
tls_info(Node) ->
    case lists:keyfind(Node, 1, erlang:system_info(dist_ctrl)) of
        {_, Sender} when is_pid(Sender) ->
            {dictionary, Dict} = process_info(Sender, dictionary),
            {_, [Sup | _]} = lists:keyfind('$ancestors', 1, Dict),
            {receiver, Receiver, _, _} = lists:keyfind(receiver, 1, supervisor:which_children(Sup)),
            {ok, Info} = ssl:connection_information({sslsocket, nil, [Receiver, Sender]},
                                                     [protocol, selected_cipher_suite]),
            {_, Proto} = lists:keyfind(protocol, 1, Info),
            {_, Suite} = lists:keyfind(selected_cipher_suite, 1, Info),
            list_to_atom(atom_to_list(Proto) ++ " " ++ ssl:suite_to_str(Suite));
        {_, Port} when is_port(Port) ->
            not_tls;
        false ->
            error({not_connected, Node})
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

%% cold_steps is cold with the connection's steps timed: it traces the
%% setup process net_kernel spawns (calls and returns, monotonic
%% timestamps) and returns [Total | Steps], nanoseconds since the ping
%% started at which each step returned, -1 for a step not seen (TLS
%% connects with its own functions): the EPMD lookup, the TCP connect,
%% recv_status (send_name answered: the far end accepted and read it),
%% recv_challenge, recv_challenge_ack (handshake done). Total minus the
%% last is nodeup and the ping's own call. Three round trips
%% (erpc:call) on the new connection follow, each in nanoseconds.
cold_steps(Node, _TimeoutMs) ->
    case connected(Node) of
        true ->
            already_connected;
        false ->
            Steps = [{erl_epmd, port_please}, {inet_tcp, connect},
                     {dist_util, recv_status}, {dist_util, recv_challenge},
                     {dist_util, recv_challenge_ack}],
            [erlang:trace_pattern({M, F, '_'}, [{'_', [], [{return_trace}]}], [local])
             || {M, F} <- Steps],
            erlang:trace(new_processes, true, [call, monotonic_timestamp, {tracer, self()}]),
            %% Trace timestamps are monotonic_time(nanosecond).
            T0 = erlang:monotonic_time(nanosecond),
            Pong = net_adm:ping(Node),
            T1 = erlang:monotonic_time(nanosecond),
            erlang:trace(new_processes, false, [call]),
            erlang:trace(processes, false, [call]),
            [erlang:trace_pattern({M, F, '_'}, false, [local]) || {M, F} <- Steps],
            Ref = erlang:trace_delivered(all),
            receive {trace_delivered, all, Ref} -> ok after 5000 -> ok end,
            Returns = drain_returns(#{}),
            pong = Pong,
            Ns = fun(T) -> T - T0 end,
            %% Then three round trips on the new connection, each alone.
            Rtts = [begin
                        R0 = erlang:monotonic_time(nanosecond),
                        Node = erpc:call(Node, erlang, node, []),
                        erlang:monotonic_time(nanosecond) - R0
                    end || _ <- [1, 2, 3]],
            [Ns(T1) | [case Returns of #{MF := T} -> Ns(T); #{} -> -1 end || MF <- Steps]] ++ Rtts
    end.

%% drain_returns keeps the first return time of each traced function.
drain_returns(Acc) ->
    receive
        {trace_ts, _, return_from, {inet_tcp, connect, _}, _, TS} ->
            %% The last: erl_epmd connects with it too.
            drain_returns(Acc#{{inet_tcp, connect} => TS});
        {trace_ts, _, return_from, {M, F, _}, _, TS} ->
            drain_returns(case Acc of #{{M, F} := _} -> Acc; #{} -> Acc#{{M, F} => TS} end);
        {trace_ts, _, _, _, _} -> drain_returns(Acc);
        {trace_ts, _, _, _, _, _} -> drain_returns(Acc)
    after 0 ->
        Acc
    end.

%% goodput is the bulk transfer of the real-network matrix (e2e/bench/wan.go):
%% a pump process keeps Window Size-byte binaries unacknowledged on a sink
%% on To for DurMs; goodput returns {Bytes, Nanoseconds, Drain}: the bytes
%% acknowledged before the deadline and the time to it. The pump does the
%% sending because a send on a busy distribution connection suspends the
%% sender for as long as the connection stays stuck (a path that drops big
%% packets), and the clock must still stop on time. Unlike stream the drain
%% is not counted (at a few hundred kB/s the window alone takes many
%% seconds), but goodput waits up to DrainMs for it so the next measurement
%% finds a quiet link; Drain says how that went: drained or not_drained (the
%% pump is then killed). A connection that goes down before the deadline
%% raises {sink_down, Why}; no acknowledgement of a first, tiny message
%% within AckTimeoutMs raises sink_timeout.
goodput(To, Size, Window, DurMs, AckTimeoutMs, DrainMs) ->
    Parent = self(),
    Acked = atomics:new(1, []),
    Pump = spawn(fun() -> gp_start(Parent, To, Size, Window, Acked) end),
    T = receive
            {ready, Pump, T0} -> T0;
            {down, Pump, Why0} -> error({sink_down, Why0})
        after AckTimeoutMs ->
                exit(Pump, kill),
                error(sink_timeout)
        end,
    Deadline = T + erlang:convert_time_unit(DurMs, millisecond, native),
    Left = erlang:convert_time_unit(Deadline - erlang:monotonic_time(), native, millisecond),
    receive
        {down, Pump, Why} -> error({sink_down, Why})
    after max(0, Left) ->
            ok
    end,
    T1 = erlang:monotonic_time(),
    N = atomics:get(Acked, 1),
    Pump ! stop,
    Drain = receive
                {drained, Pump} -> drained;
                {down, Pump, _} -> not_drained
            after DrainMs ->
                    exit(Pump, kill),
                    not_drained
            end,
    {N * Size, erlang:convert_time_unit(T1 - T, native, nanosecond), Drain}.

gp_start(Parent, To, Size, Window, Acked) ->
    Bin = rand:bytes(Size),
    Ref = make_ref(),
    Sink = spawn(To, ?MODULE, sink, [self(), Ref]),
    MRef = erlang:monitor(process, Sink),
    Sink ! {d, Ref, <<0>>},
    receive
        {a, Ref} -> ok;
        {'DOWN', MRef, process, _, Why0} -> Parent ! {down, self(), Why0}, exit(normal)
    end,
    Parent ! {ready, self(), erlang:monotonic_time()},
    [Sink ! {d, Ref, Bin} || _ <- lists:seq(1, Window)],
    gp_pump(Parent, Sink, Ref, Bin, MRef, Acked, Window).

%% gp_pump refills the window on every acknowledgement until told to stop,
%% then waits for the rest.
gp_pump(Parent, Sink, Ref, Bin, MRef, Acked, InFlight) ->
    receive
        {a, Ref} ->
            atomics:add(Acked, 1, 1),
            Sink ! {d, Ref, Bin},
            gp_pump(Parent, Sink, Ref, Bin, MRef, Acked, InFlight);
        stop ->
            gp_drain(Parent, Sink, Ref, MRef, InFlight);
        {'DOWN', MRef, process, _, Why} ->
            Parent ! {down, self(), Why}
    end.

gp_drain(Parent, Sink, Ref, _MRef, 0) ->
    Sink ! {stop, Ref},
    Parent ! {drained, self()};
gp_drain(Parent, Sink, Ref, MRef, InFlight) ->
    receive
        {a, Ref} -> gp_drain(Parent, Sink, Ref, MRef, InFlight - 1);
        {'DOWN', MRef, process, _, Why} -> Parent ! {down, self(), Why}
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

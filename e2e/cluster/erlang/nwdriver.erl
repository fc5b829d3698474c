%% nwdriver is the Erlang side of the e2e harness (package e2e/cluster).
%%
%% The harness starts a stock `erl -noshell` with `-s nwdriver main` and talks
%% to it over stdin/stdout, so the node under test runs no extra applications
%% and needs no ports of its own: whatever the test observes over the network
%% is real distribution traffic.
%%
%% Protocol, one request or reply per line:
%%   stdin:  nweval <Id> <Base64 of Erlang expressions ending in '.'>
%%   stdout: nwres <Id> ok <Value printed with ~w>
%%           nwres <Id> error <Class>:<Reason ~w> <first stack frames ~w>
%% Base64 keeps multi-line expressions on one line; ~w never emits a newline.
%% Each request is evaluated in its own process, so a slow evaluation (a
%% benchmark) does not block a quick one, and a crash affects only its reply.
%% Any other stdout line (logger reports and the like) is not ours; the harness
%% copies it to the node's log. When stdin closes the node halts, so a harness
%% that dies takes its nodes with it.
-module(nwdriver).
-export([main/0, nodedowns/0, sink/1, throughput/5, rtt/3]).

main() ->
    ok = io:setopts(standard_io, [binary]),
    start_counter(),
    %% Announce readiness on stdout as well, for humans reading the log.
    io:format("nwdriver ready ~w~n", [node()]),
    spawn(fun loop/0),
    ok.

loop() ->
    case io:get_line(standard_io, "") of
        eof ->
            erlang:halt(0);
        {error, _} ->
            erlang:halt(1);
        Line ->
            handle(string:trim(Line, trailing)),
            loop()
    end.

handle(<<"nweval ", Rest/binary>>) ->
    case binary:split(Rest, <<" ">>) of
        [Id, B64] ->
            spawn(fun() -> eval(Id, B64) end);
        _ ->
            io:format("nwdriver: malformed request ~w~n", [Rest])
    end;
handle(<<>>) ->
    ok;
handle(Other) ->
    io:format("nwdriver: unknown request ~w~n", [Other]).

eval(Id, B64) ->
    try
        Src = unicode:characters_to_list(base64:decode(B64)),
        Toks = case erl_scan:string(Src) of
                   {ok, T, _} -> T;
                   {error, ScanErr, _} -> error({scan, ScanErr})
               end,
        Exprs = case erl_parse:parse_exprs(Toks) of
                    {ok, E} -> E;
                    {error, ParseErr} -> error({parse, ParseErr})
                end,
        {value, V, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
        V
    of
        Value ->
            io:format("nwres ~s ok ~w~n", [Id, Value])
    catch
        Class:Reason:Stack ->
            io:format("nwres ~s error ~ts~n",
                      [Id, one_line({Class, Reason, frames(Stack)})])
    end.

%% Errors are for people to read, so they are printed like ~p (strings as
%% strings) but on one line, with the stack cut to a few frames.
one_line({Class, Reason, Frames}) ->
    P = fun(T) ->
                io_lib_pretty:print(T, [{column, 1}, {line_length, 1 bsl 30},
                                        {depth, -1}, {encoding, unicode}])
        end,
    S = [atom_to_list(Class), ":", P(Reason), " at ", P(Frames)],
    string:replace(unicode:characters_to_list(S), "\n", " ", all).

frames(Stack) ->
    [case proplists:get_value(line, Loc) of
         undefined -> {M, F, arity(A)};
         L -> {M, F, arity(A), L}
     end || {M, F, A, Loc} <- lists:sublist(Stack, 3)].

arity(A) when is_list(A) -> length(A);
arity(A) -> A.

%% The node-down counter lets tests assert that something did NOT happen
%% (no distribution connection dropped during a rekey, say) without
%% racing against a monitor set up after the fact.
start_counter() ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() ->
                  _ = net_kernel:monitor_nodes(true),
                  register(nwdriver_nodedowns, self()),
                  Parent ! Ref,
                  counter(0)
          end),
    receive Ref -> ok end.

counter(N) ->
    receive
        {nodedown, _Node} ->
            counter(N + 1);
        {get, From, Ref} ->
            From ! {Ref, N},
            counter(N);
        _ ->
            counter(N)
    end.

nodedowns() ->
    Ref = make_ref(),
    nwdriver_nodedowns ! {get, self(), Ref},
    receive {Ref, N} -> N after 5000 -> error(timeout) end.

%% sink runs on the receiving node: it acknowledges every message so the
%% sender can keep a fixed number in flight.
sink(From) ->
    receive
        {nwdata, Ref, Bin} ->
            From ! {nwack, Ref, byte_size(Bin)},
            sink(From);
        stop ->
            ok
    after 60000 ->
            ok
    end.

%% throughput sends Count messages of Size bytes to a sink on To, keeping
%% Window unacknowledged, and returns {Bytes, Nanoseconds}. The connection is
%% set up (and one message exchanged) before the clock starts, so the handshake
%% is not part of the figure. TimeoutMs bounds each wait for progress, so a
%% stalled link ends the measurement instead of leaving it hanging.
throughput(To, Count, Size, Window, TimeoutMs) ->
    pong = net_adm:ping(To),
    Ref = make_ref(),
    Sink = spawn(To, ?MODULE, sink, [self()]),
    MRef = erlang:monitor(process, Sink),
    Bin = rand:bytes(Size),
    Sink ! {nwdata, Ref, <<0>>},
    receive {nwack, Ref, 1} -> ok after TimeoutMs -> error(timeout) end,
    T0 = erlang:monotonic_time(),
    Sent = send_n(Sink, Ref, Bin, min(Window, Count)),
    ok = pump(Sink, Ref, Bin, MRef, TimeoutMs, Sent, Count, 0),
    T1 = erlang:monotonic_time(),
    Sink ! stop,
    erlang:demonitor(MRef, [flush]),
    {Count * Size, erlang:convert_time_unit(T1 - T0, native, nanosecond)}.

send_n(_Sink, _Ref, _Bin, 0) -> 0;
send_n(Sink, Ref, Bin, N) ->
    Sink ! {nwdata, Ref, Bin},
    1 + send_n(Sink, Ref, Bin, N - 1).

pump(_Sink, _Ref, _Bin, _MRef, _TimeoutMs, _Sent, Count, Acked) when Acked >= Count ->
    ok;
pump(Sink, Ref, Bin, MRef, TimeoutMs, Sent, Count, Acked) ->
    receive
        {nwack, Ref, _} when Sent < Count ->
            Sink ! {nwdata, Ref, Bin},
            pump(Sink, Ref, Bin, MRef, TimeoutMs, Sent + 1, Count, Acked + 1);
        {nwack, Ref, _} ->
            pump(Sink, Ref, Bin, MRef, TimeoutMs, Sent, Count, Acked + 1);
        {'DOWN', MRef, process, _, Why} ->
            error({sink_down, Why})
    after TimeoutMs ->
            error({timeout, Acked, Count})
    end.

%% rtt times Count erpc:call round trips to To (after one untimed call that
%% sets up the connection) and returns the durations in nanoseconds, sorted.
rtt(To, Count, TimeoutMs) ->
    pong = net_adm:ping(To),
    To = erpc:call(To, erlang, node, [], TimeoutMs),
    Ts = [begin
              T0 = erlang:monotonic_time(),
              To = erpc:call(To, erlang, node, [], TimeoutMs),
              erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond)
          end || _ <- lists:seq(1, Count)],
    lists:sort(Ts).

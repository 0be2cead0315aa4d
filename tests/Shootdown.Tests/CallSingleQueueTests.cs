using CsCheck;
using Shootdown.Kernel;
using Xunit;

namespace Shootdown.Tests;

public class CallSingleQueueTests
{
    [Fact]
    public void AnEmptyQueueCarriesNothing()
    {
        var q = new CallSingleQueue();
        Assert.Equal(-1, q.CarrierAt(100));
    }

    [Fact]
    public void ARequestIsRunByTheFirstHandlerToEmptyTheQueueAfterIt()
    {
        var q = new CallSingleQueue();
        q.Add(1, post: 100, drain: 300, runEnd: 400, known: true, idle: false, now: 0);
        q.Add(2, post: 200, drain: 250, runEnd: 280, known: false, idle: false, now: 0); // a call to several CPUs: sent anyway
        Assert.Equal(-1, q.CarrierAt(99));
        // Queued at or after the first post: not empty; IPI 2's handler empties the queue first,
        // even for a request queued before IPI 2 was sent.
        Assert.Equal(2, q.Serial(q.CarrierAt(100)));
        Assert.Equal(2, q.Serial(q.CarrierAt(199)));
        Assert.Equal(2, q.Serial(q.CarrierAt(249)));
        Assert.Equal(-1, q.CarrierAt(250));              // emptied at 250: both requests were taken
        Assert.Equal(-1, q.CarrierAt(299));
        Assert.Equal(1, q.Serial(q.CarrierAt(200, exclude: 2))); // had IPI 2 never been sent
        Assert.Equal(-1, q.CarrierAt(50, exclude: 1));
    }

    [Fact]
    public void AnOlderIpiThanTheLatestCarriesARequestQueuedWhileItWasPending()
    {
        var q = new CallSingleQueue();
        q.Add(1, post: 100, drain: 200, runEnd: 220, known: true, idle: false, now: 0);
        q.Add(2, post: 500, drain: 600, runEnd: 620, known: true, idle: false, now: 0);
        Assert.Equal(1, q.Serial(q.CarrierAt(150)));
        Assert.Equal(-1, q.CarrierAt(300));
        Assert.Equal(2, q.Serial(q.CarrierAt(550)));
        q.RunEnd(q.CarrierAt(150)) += 30;
        Assert.Equal(250, q.RunEnd(q.IndexOf(1)));
    }

    [Fact]
    public void AnIpiWhoseHandlerEmptiedTheQueueBeforeTheSimulationsTimeIsForgottenButStillCountsAsAnEmptying()
    {
        var q = new CallSingleQueue();
        q.Add(1, post: 100, drain: 200, runEnd: 220, known: true, idle: false, now: 0);
        q.Add(2, post: 150, drain: 400, runEnd: 420, known: false, idle: false, now: 0); // its request taken at 200
        q.Add(3, post: 600, drain: 700, runEnd: 720, known: true, idle: false, now: 300);
        Assert.Equal(2, q.Count);
        Assert.Equal(-1, q.IndexOf(1));
        Assert.Equal(-1, q.CarrierAt(350)); // IPI 2's request went at 200: the queue is empty until 600
        Assert.Equal(3, q.Serial(q.CarrierAt(650)));
    }

    [Fact]
    public void AnIpiStillOnItsWayIsNotForgottenAndItsResolutionMovesItsEmptying()
    {
        var q = new CallSingleQueue();
        q.Add(1, post: 100, drain: 200, runEnd: 220, known: false, idle: false, now: 0);
        q.Add(2, post: 900, drain: 1000, runEnd: 1020, known: true, idle: false, now: 500);
        Assert.Equal(0, q.IndexOf(1));
        Assert.False(q.Known(0));
        q.Resolve(q.IndexOf(1), drain: 950, runEnd: 980, idle: true);
        int i = q.CarrierAt(920);
        Assert.Equal(1, q.Serial(i)); // taken at 950, before IPI 2's handler
        Assert.True(q.Known(i));
        Assert.True(q.Idle(i));
        q.RemoveAt(i);
        Assert.Equal(2, q.Serial(q.CarrierAt(920)));
    }

    [Fact]
    public void AnEmptyingIsKeptWhileARequestQueuedBeforeItAwaitsItsCheck()
    {
        var q = new CallSingleQueue();
        q.AwaitCheck(150); // a request queued at 150 is checked at its IPI's arrival, later
        q.Add(1, post: 100, drain: 200, runEnd: 220, known: true, idle: false, now: 0);
        q.Add(2, post: 600, drain: 700, runEnd: 720, known: true, idle: false, now: 300);
        Assert.Equal(1, q.Serial(q.CarrierAt(150))); // IPI 1's handler, though it emptied the queue before 300
        q.Checked(150);
        Assert.Equal(0, q.Unchecked);
        q.Add(3, post: 800, drain: 900, runEnd: 920, known: true, idle: false, now: 300);
        Assert.Equal(-1, q.IndexOf(1)); // forgotten now that nothing queued before it awaits a check
        Assert.Equal(-1, q.CarrierAt(400));
        Assert.Throws<InvalidOperationException>(() => q.Checked(150));
    }

    [Fact]
    public void AnEmptyingNotAfterItsPostIsRefused()
    {
        var q = new CallSingleQueue();
        Assert.Throws<ArgumentOutOfRangeException>(() => q.Add(1, post: 100, drain: 100, runEnd: 120, known: true, idle: false, now: 0));
        q.Add(2, post: 100, drain: 150, runEnd: 160, known: false, idle: false, now: 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => q.Resolve(0, drain: 90, runEnd: 95, idle: false));
    }

    /// <summary>
    /// Against a queue that forgets nothing: for random sequences of IPIs remembered (known or on
    /// their way), resolved, removed, requests awaiting and passing their checks and the simulation's
    /// time moving on, every question the flush path may ask — what carries a request queued at or
    /// after the current time, or one still awaiting its check — gets the same answer (the IPI's
    /// serial, or none). The sequences of even seeds never register a request, so forgetting runs on
    /// the current time alone.
    /// </summary>
    [Fact]
    public void PropertyForgettingNeverChangesAnAnswerTheFlushPathMayAsk()
    {
        Gen.ULong.Sample(seed =>
        {
            var rng = new Random((int)(seed % int.MaxValue));
            bool withChecks = (seed & 1) == 1;
            var q = new CallSingleQueue();
            var all = new List<(int Serial, long Post, long Drain, bool Known)>();
            var awaiting = new List<long>();
            long now = 0;
            int serial = 0;
            for (int step = 0; step < 300; step++)
            {
                now += rng.Next(0, 40);
                int op = rng.Next(0, 10);
                if (op < 4)
                {
                    long post = now + rng.Next(0, 100);
                    long drain = post + rng.Next(1, 200);
                    bool known = rng.Next(0, 2) == 0;
                    if (withChecks && rng.Next(0, 2) == 0)
                    {
                        q.AwaitCheck(post);
                        awaiting.Add(post);
                    }
                    q.Add(++serial, post, drain, drain + 10, known, idle: false, now);
                    all.Add((serial, post, drain, known));
                }
                else if (op == 4 && Unknown(all) is { Count: > 0 } onTheirWay)
                {
                    var ipi = onTheirWay[rng.Next(onTheirWay.Count)];
                    long drain = Math.Max(Math.Max(ipi.Drain, now), ipi.Post + 1) + rng.Next(0, 50);
                    q.Resolve(q.IndexOf(ipi.Serial), drain, drain + 10, idle: false);
                    all[all.FindIndex(x => x.Serial == ipi.Serial)] = (ipi.Serial, ipi.Post, drain, true);
                }
                else if (op == 5 && Unknown(all) is { Count: > 0 } unsent)
                {
                    var ipi = unsent[rng.Next(unsent.Count)];
                    q.RemoveAt(q.IndexOf(ipi.Serial));
                    all.RemoveAll(x => x.Serial == ipi.Serial);
                }
                else if (op == 6 && awaiting.Count > 0)
                {
                    int i = rng.Next(awaiting.Count);
                    q.Checked(awaiting[i]);
                    awaiting.RemoveAt(i);
                }
                else
                {
                    long t = awaiting.Count > 0 && rng.Next(0, 2) == 0 ? awaiting[rng.Next(awaiting.Count)] : now + rng.Next(0, 300);
                    var pending = Unknown(all);
                    int exclude = pending.Count > 0 && rng.Next(0, 3) == 0 ? pending[rng.Next(pending.Count)].Serial : 0;
                    int got = q.CarrierAt(t, exclude);
                    Assert.Equal(ReferenceCarrier(all, t, exclude), got < 0 ? 0 : q.Serial(got));
                }
                Assert.True(q.Count <= all.Count);
                Assert.Equal(awaiting.Count, q.Unchecked);
            }
        }, iter: 400, threads: 1);
    }

    private static List<(int Serial, long Post, long Drain, bool Known)> Unknown(List<(int Serial, long Post, long Drain, bool Known)> all) =>
        all.FindAll(x => !x.Known);

    /// <summary>CarrierAt over every IPI ever remembered and not removed: the serial of the first to empty the queue after <paramref name="t"/> (lower serial on a tie) when the latest request queued by <paramref name="t"/> came no earlier than the latest emptying by then, else 0.</summary>
    private static int ReferenceCarrier(List<(int Serial, long Post, long Drain, bool Known)> all, long t, int exclude)
    {
        long lastPost = long.MinValue, lastDrain = long.MinValue;
        bool anyPost = false;
        (int Serial, long Drain)? carrier = null;
        foreach (var x in all)
        {
            if (x.Serial == exclude)
            {
                continue;
            }
            if (x.Post <= t)
            {
                lastPost = anyPost ? Math.Max(lastPost, x.Post) : x.Post;
                anyPost = true;
            }
            if (x.Drain <= t)
            {
                lastDrain = Math.Max(lastDrain, x.Drain);
            }
            else if (carrier is null || x.Drain < carrier.Value.Drain || (x.Drain == carrier.Value.Drain && x.Serial < carrier.Value.Serial))
            {
                carrier = (x.Serial, x.Drain);
            }
        }
        return anyPost && lastPost >= lastDrain && carrier is not null ? carrier.Value.Serial : 0;
    }
}

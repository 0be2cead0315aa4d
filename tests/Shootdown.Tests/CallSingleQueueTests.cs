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
}

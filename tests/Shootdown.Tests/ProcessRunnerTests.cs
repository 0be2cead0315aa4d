using Shootdown.Kernel.Sched;

namespace Shootdown.Tests;

/// <summary>Sub-process calls (<see cref="Yield.Call"/>) run by a <see cref="ProcessRunner"/> as a foreach over them would.</summary>
public class ProcessRunnerTests
{
    private static IEnumerable<Yield> Leaf(List<string> log, string name, int steps)
    {
        for (int i = 0; i < steps; i++)
        {
            log.Add($"{name}{i}");
            yield return Yield.Resched;
        }
        log.Add($"{name} ends");
    }

    private static IEnumerable<Yield> Middle(List<string> log)
    {
        log.Add("middle starts");
        yield return Process.Call(Leaf(log, "a", 2));
        log.Add("middle after a"); // same step as a's end
        yield return Process.Call(Leaf(log, "b", 0)); // a callee that ends at once takes no step
        log.Add("middle after b");
        yield return Yield.Sleep;
        log.Add("middle woken");
    }

    private static IEnumerable<Yield> Root(List<string> log, bool call)
    {
        if (call)
        {
            yield return Process.Call(Middle(log));
        }
        else
        {
            foreach (Yield y in Middle(log))
            {
                yield return y;
            }
        }
        log.Add("root ends");
    }

    /// <summary>The steps a runner makes: each step's log entries and the yield that ended it.</summary>
    private static List<string> Steps(IEnumerable<Yield> process, List<string> log)
    {
        var steps = new List<string>();
        using var runner = new ProcessRunner(process);
        while (runner.MoveNext())
        {
            steps.Add(string.Join(",", log) + " | " + runner.Current);
            log.Clear();
        }
        steps.Add(string.Join(",", log) + " | end");
        log.Clear();
        return steps;
    }

    [Fact]
    public void CallsTakeTheSameStepsAsAForeachOverTheCallee()
    {
        var log = new List<string>();
        List<string> called = Steps(Root(log, call: true), log);
        List<string> relayed = Steps(Root(log, call: false), log);
        Assert.Equal(relayed, called);
        Assert.Equal(
            [
                "middle starts,a0 | Resched",
                "a1 | Resched",
                "a ends,middle after a,b ends,middle after b | Sleep",
                "middle woken,root ends | end",
            ],
            called);
    }

    [Fact]
    public void TheRunnerYieldsOnlyStepEnds()
    {
        var log = new List<string>();
        using var runner = new ProcessRunner(Root(log, call: true));
        while (runner.MoveNext())
        {
            Assert.NotEqual(Yield.Call, runner.Current);
        }
    }

    private static IEnumerable<Yield> CallsNothing()
    {
        yield return Yield.Call;
    }

    [Fact]
    public void ACallWithoutACalleeIsRefused()
    {
        using var runner = new ProcessRunner(CallsNothing());
        Assert.Throws<InvalidOperationException>(() => runner.MoveNext());
    }
}

using Shootdown.Cli;

namespace Shootdown.Tests;

[CollectionDefinition("console", DisableParallelization = true)]
public class ConsoleCollection
{
}

[Collection("console")]
public class CliTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        var o = new StringWriter();
        var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = ShootdownCli.RunAsync(args).GetAwaiter().GetResult();
            return (code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Theory]
    [InlineData("unknown machine preset 'nope'", "run", "--machine", "nope")]
    [InlineData("unknown workload 'w'", "run", "--workload", "w")]
    [InlineData("unknown policy 'p'", "run", "--policy", "p")]
    [InlineData("--pte-accessible-check must be on or off, got 'maybe'", "run", "--pte-accessible-check", "maybe")]
    [InlineData("migrate-bounce needs at least 2 NUMA nodes; the machine has 1", "run", "--machine", "tiny", "--workload", "migrate-bounce")]
    [InlineData("malformed --scale '1/x'", "run", "--scale", "1/x")]
    [InlineData("malformed --scale '1/0'", "run", "--scale", "1/0")]
    [InlineData("--nodes must be a positive integer", "run", "--nodes", "0")]
    [InlineData("--cpus-per-node must be a positive integer", "run", "--cpus-per-node", "-3")]
    [InlineData("malformed size '-1GiB'", "run", "--memory", "-1GiB")]
    [InlineData("memory too small", "run", "--machine", "tiny", "--memory", "1MiB")]
    [InlineData("unknown --format 'xml'", "run", "--format", "xml")]
    [InlineData("unknown cost constant 'Nope'", "run", "--cost", "Nope=3")]
    [InlineData("--seed must be a non-negative integer", "run", "--seed", "abc")]
    [InlineData("matches no event", "run", "--trace-events", "nope:*")]
    [InlineData("needs at least 3 CPUs", "run", "--workload", "lru-file-mmap-write", "--machine", "tiny", "--cpus-per-node", "2")]
    [InlineData("--oracle must be on or off", "run", "--oracle", "maybe")]
    [InlineData("--trace-window '3-1' is empty", "run", "--trace-window", "3-1")]
    [InlineData("malformed --interval '7ms'", "run", "--interval", "7ms")]
    [InlineData("does not exist", "run", "--trace", "/nonexistent-dir/t.txt")]
    [InlineData("--input file 'missing.csv' does not exist", "plot", "--input", "missing.csv")]
    public void BadInputIsOneClearLineAndNonZeroExit(string expected, params string[] args)
    {
        var (code, stdout, stderr) = Cli(args);
        Assert.NotEqual(0, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Equal("", stdout);
    }

    [Theory]
    [InlineData("unknown policy 'x'", "compare", "--policies", "vanilla,x")]
    [InlineData("malformed --policies", "compare", "--policies", "vanilla,")]
    [InlineData("--repeat must be a positive integer, got '0'", "compare", "--repeat", "0")]
    [InlineData("unknown --format 'yaml'", "compare", "--format", "yaml")]
    [InlineData("--repeat must be a positive integer", "reproduce", "--repeat", "-1")]
    public void CompareAndReproduceRejectBadInput(string expected, params string[] args)
    {
        var (code, stdout, stderr) = Cli(args);
        Assert.NotEqual(0, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.Equal("", stdout);
    }

    [Fact]
    public void PoliciesListsOneLineEach()
    {
        var (code, stdout, _) = Cli("policies");
        Assert.Equal(0, code);
        Assert.Equal(6, stdout.TrimEnd('\n').Split('\n').Length);
        Assert.StartsWith("vanilla", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkloadsListsOneLineEach()
    {
        var (code, stdout, _) = Cli("workloads");
        Assert.Equal(0, code);
        string[] lines = stdout.TrimEnd('\n').Split('\n');
        Assert.Equal(["lru-file-mmap-read", "lru-file-mmap-write", "mprotect-race", "migrate-bounce", "numa-migrate"], lines.Select(l => l.Split(' ')[0]));
    }

    [Fact]
    public void CompareCsvOnATinyMachine()
    {
        var (code, stdout, _) = Cli("compare", "--machine", "tiny", "--scale", "1/4", "--policies", "vanilla,linux-4.3", "--format", "csv");
        Assert.Equal(0, code);
        Assert.Contains("elapsed_s,linux-4.3,", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownOptionIsAParseError()
    {
        var (code, _, stderr) = Cli("run", "--frobnicate");
        Assert.Equal(2, code);
        Assert.Contains("--frobnicate", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void RunPrintsJsonWithoutProgress()
    {
        var (code, stdout, stderr) = Cli("run", "--machine", "tiny", "--scale", "1/4", "--format", "json", "--seed", "3");
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        Assert.Equal("vanilla", doc.RootElement.GetProperty("policy").GetString());
        Assert.Equal(3UL, doc.RootElement.GetProperty("config").GetProperty("seed").GetUInt64());
        Assert.Equal(4, doc.RootElement.GetProperty("config").GetProperty("scale_divisor").GetInt32());
    }

    [Fact]
    public void OverridesReachTheConfig()
    {
        var (code, stdout, _) = Cli("run", "--machine", "tiny", "--nodes", "2", "--cpus-per-node", "2", "--memory", "64MiB", "--format", "json", "--scale", "1/1", "--cost", "IpiSendNs=70");
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(stdout);
        var cfg = doc.RootElement.GetProperty("config");
        Assert.Equal(2, cfg.GetProperty("nodes").GetInt32());
        Assert.Equal(2, cfg.GetProperty("cpus_per_node").GetInt32());
        Assert.Equal(64L << 20, cfg.GetProperty("memory_bytes").GetInt64());
        Assert.Equal(70, cfg.GetProperty("costs").GetProperty("ipi_send_ns").GetInt64());
    }
}

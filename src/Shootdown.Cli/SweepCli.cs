using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Reports;
using Spectre.Console;

namespace Shootdown.Cli;

/// <summary>`shootdown sweep`: run the product of a sweep file's axes into a DuckDB store; merge, export, plot stores.</summary>
internal static class SweepCli
{
    public static Command Build()
    {
        var file = new Argument<string>("FILE") { Description = "Sweep file (TOML with a [sweep] table; README, \"Sweeps\")" };
        var store = new Option<string>("--store") { HelpName = "FILE", Description = "DuckDB file the rows go to (created if missing; runs already in it are skipped)", DefaultValueFactory = _ => "results.duckdb" };
        var jobs = new Option<string?>("--jobs") { Description = "Runs at once [default: the processor count]" };
        var shard = new Option<string?>("--shard") { HelpName = "K/N", Description = "Run only the runs whose index in the product is K-1 modulo N (K from 1)" };
        var cmd = new Command("sweep", "Run the product of a sweep file's axes in parallel, one row per run in a DuckDB store (resumable)");
        cmd.Arguments.Add(file);
        cmd.Options.Add(store);
        cmd.Options.Add(jobs);
        cmd.Options.Add(shard);
        cmd.SetAction(pr =>
        {
            int j = pr.GetValue(jobs) is { } js ? (int)ParseArg.Integer(js, "--jobs", 1, 1024) : Environment.ProcessorCount;
            (int k, int n) = pr.GetValue(shard) is { } sh ? SweepFile.ParseShard(sh) : (0, 1);
            IReadOnlyList<SweepRun> all = SweepFile.Load(pr.GetValue(file)!);
            string path = pr.GetValue(store)!;
            using SweepStore db = SweepStore.Open(path, "--store");
            return Run(all.Where(r => r.Index % n == k).ToList(), db, path, j);
        });
        cmd.Subcommands.Add(BuildMerge());
        cmd.Subcommands.Add(BuildExport());
        cmd.Subcommands.Add(BuildPlot());
        return cmd;
    }

    /// <summary>Runs what the store lacks: workers simulate, one writer thread (this one) inserts.</summary>
    private static int Run(List<SweepRun> mine, SweepStore db, string path, int jobs)
    {
        List<SweepRun> todo = mine.Where(r => !db.Keys.Contains(r.Key)).ToList();
        int skipped = mine.Count - todo.Count;
        Console.Error.WriteLine($"sweep: {mine.Count} runs, {skipped} already in {path}, {todo.Count} to run on {Math.Min(jobs, Math.Max(1, todo.Count))} jobs");
        using var queue = new BlockingCollection<SweepRow>(boundedCapacity: 64);
        Exception? failure = null;
        var workers = new Thread(() =>
        {
            try
            {
                Parallel.ForEach(todo, new ParallelOptions { MaxDegreeOfParallelism = jobs }, run =>
                {
                    var sw = Stopwatch.StartNew();
                    RunResult result = Runner.Run(run.Config);
                    queue.Add(SweepRow.From(run, result, sw.Elapsed.TotalSeconds));
                });
            }
            catch (AggregateException e)
            {
                failure = e.InnerExceptions[0];
            }
            finally
            {
                queue.CompleteAdding();
            }
        })
        { IsBackground = true, Name = "sweep workers" };
        workers.Start();
        int done = 0;
        void Write(Action<int>? onRow)
        {
            foreach (SweepRow row in queue.GetConsumingEnumerable())
            {
                db.Insert(row);
                done++;
                onRow?.Invoke(done);
            }
        }
        if (!Console.IsErrorRedirected && todo.Count > 0)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"sweep ({todo.Count} runs)", maxValue: todo.Count);
                    Write(_ => task.Increment(1));
                });
        }
        else
        {
            Write(d => Console.Error.WriteLine($"sweep: {d}/{todo.Count} stored"));
        }
        workers.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
        Console.Out.WriteLine($"{done} runs stored, {skipped} were already in {path}; {db.Keys.Count} rows in the store");
        return ShootdownCli.ExitOk;
    }

    private static Command BuildMerge()
    {
        var outArg = new Argument<string>("OUT") { Description = "Store to merge into (created if missing)" };
        var inArg = new Argument<string[]>("IN") { Description = "Shard stores to merge", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("merge", "Merge shard stores into one; a run in two stores with different results is refused");
        cmd.Arguments.Add(outArg);
        cmd.Arguments.Add(inArg);
        cmd.SetAction(pr =>
        {
            string outPath = pr.GetValue(outArg)!;
            string[] ins = pr.GetValue(inArg)!;
            if (ins.Any(i => Path.GetFullPath(i) == Path.GetFullPath(outPath)))
            {
                throw new ConfigException($"sweep merge: OUT '{outPath}' is also an input; name a new file or leave it out of IN");
            }
            // Read everything first so a conflict is refused before OUT is touched.
            var byKey = new Dictionary<string, (SweepRow Row, string From)>(StringComparer.Ordinal);
            var order = new List<SweepRow>();
            foreach (string i in ins)
            {
                using SweepStore s = SweepStore.Open(i, "sweep merge IN", create: false);
                foreach (SweepRow row in s.Rows())
                {
                    if (byKey.TryGetValue(row.Key, out var had))
                    {
                        if (!SameResults(had.Row, row))
                        {
                            throw new ConfigException($"sweep merge: run {row.Key} is in '{had.From}' and '{i}' with different results; refusing to merge");
                        }
                        continue;
                    }
                    byKey[row.Key] = (row, i);
                    order.Add(row);
                }
            }
            using SweepStore o = SweepStore.Open(outPath, "sweep merge OUT");
            var existing = o.Rows().ToDictionary(r => r.Key, StringComparer.Ordinal);
            int added = 0;
            foreach (SweepRow row in order.OrderBy(r => r.Columns.First(c => c.Key == "run_index").Value))
            {
                if (existing.TryGetValue(row.Key, out SweepRow? had))
                {
                    if (!SameResults(had, row))
                    {
                        throw new ConfigException($"sweep merge: run {row.Key} is in '{outPath}' and '{byKey[row.Key].From}' with different results; refusing to merge");
                    }
                    continue;
                }
                o.Insert(row);
                added++;
            }
            Console.Out.WriteLine($"{added} rows merged into {outPath} from {ins.Length} stores; {o.Keys.Count} rows in it");
            return ShootdownCli.ExitOk;
        });
        return cmd;
    }

    /// <summary>
    /// Equal rows but for host wall time and the run's place in the sweep file that stored it
    /// (run_index, variant): the same run stored by a file that grew, or by another file, has
    /// another place and the same results.
    /// </summary>
    internal static bool SameResults(SweepRow a, SweepRow b)
    {
        static bool Compared(string column) => !SweepRow.IsWallTime(column) && column is not ("run_index" or "variant");
        var x = a.Columns.Where(c => Compared(c.Key)).ToDictionary(c => c.Key, c => c.Value);
        var y = b.Columns.Where(c => Compared(c.Key)).ToDictionary(c => c.Key, c => c.Value);
        return x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out object? v) && Equals(Normal(kv.Value), Normal(v)));
    }

    private static object Normal(object v) => v is long l ? (double)l : v;

    private static Command BuildExport()
    {
        var storeArg = new Argument<string>("STORE") { Description = "Sweep store (DuckDB file)" };
        var format = new Option<string>("--format") { Description = "csv, parquet or json (an array of rows)", DefaultValueFactory = _ => "csv" };
        var outOpt = new Option<string>("--out") { HelpName = "FILE", Description = "File to write", Required = true };
        var cmd = new Command("export", "Write a sweep store's rows as CSV, Parquet or JSON");
        cmd.Arguments.Add(storeArg);
        cmd.Options.Add(format);
        cmd.Options.Add(outOpt);
        cmd.SetAction(pr =>
        {
            string f = pr.GetValue(format)!;
            string copt = f switch
            {
                "csv" => "FORMAT csv, HEADER true",
                "parquet" => "FORMAT parquet",
                "json" => "FORMAT json, ARRAY true",
                _ => throw new ConfigException($"unknown --format '{ParseArg.Clip(f)}'; allowed: csv, parquet, json"),
            };
            string outPath = pr.GetValue(outOpt)!;
            ShootdownCli.EnsureWritableFile("--out", outPath);
            using SweepStore s = SweepStore.Open(pr.GetValue(storeArg)!, "STORE", create: false);
            s.Execute($"COPY (SELECT * FROM {SweepStore.Table} ORDER BY run_index, run_key) TO '{outPath.Replace("'", "''", StringComparison.Ordinal)}' ({copt})");
            Console.Out.WriteLine($"{s.Keys.Count} rows written to {outPath}");
            return ShootdownCli.ExitOk;
        });
        return cmd;
    }

    private static Command BuildPlot()
    {
        var storeArg = new Argument<string>("STORE") { Description = "Sweep store (DuckDB file)" };
        var x = new Option<string>("--x") { HelpName = "KEY", Description = "Column on the x axis, numeric (a config key such as cpus_per_node, or any column)", Required = true };
        var y = new Option<string>("--y") { HelpName = "METRIC", Description = "Column on the y axis, e.g. tlb_ipis_per_s (mean over the runs at each x)", Required = true };
        var by = new Option<string>("--by") { HelpName = "KEY", Description = "One line per value of this column", DefaultValueFactory = _ => "policy_name" };
        var outOpt = new Option<string>("--out") { HelpName = "FILE", Description = "Image to write: FILE.png or FILE.svg", Required = true };
        var cmd = new Command("plot", "Plot a metric of a sweep store against a key, one line per policy (or --by KEY)");
        cmd.Arguments.Add(storeArg);
        cmd.Options.Add(x);
        cmd.Options.Add(y);
        cmd.Options.Add(by);
        cmd.Options.Add(outOpt);
        cmd.SetAction(pr =>
        {
            string outPath = pr.GetValue(outOpt)!;
            if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase) && !outPath.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
            {
                throw new ConfigException($"--out '{ParseArg.Clip(outPath)}' must end in .png or .svg");
            }
            ShootdownCli.EnsureWritableFile("--out", outPath);
            using SweepStore s = SweepStore.Open(pr.GetValue(storeArg)!, "STORE", create: false);
            string xc = Column(s, pr.GetValue(x)!, "--x"), yc = Column(s, pr.GetValue(y)!, "--y"), bc = Column(s, pr.GetValue(by)!, "--by");
            var lines = new SortedDictionary<string, SortedDictionary<double, List<double>>>(StringComparer.Ordinal);
            foreach (object?[] v in s.Select(xc, yc, bc))
            {
                if (v[0] is null || v[1] is null)
                {
                    continue;
                }
                double xv = Number(v[0]!, xc, "--x"), yv = Number(v[1]!, yc, "--y");
                string label = Convert.ToString(v[2], CultureInfo.InvariantCulture) ?? "";
                if (!lines.TryGetValue(label, out var pts))
                {
                    lines[label] = pts = [];
                }
                if (!pts.TryGetValue(xv, out var ys))
                {
                    pts[xv] = ys = [];
                }
                ys.Add(yv);
            }
            if (lines.Count == 0)
            {
                throw new ConfigException($"STORE has no row with both {xc} and {yc}");
            }
            SweepPlot.Write(
                lines.Select(l => (l.Key, l.Value.Keys.ToArray(), l.Value.Values.Select(ys => ys.Average()).ToArray())).ToList(),
                xc, yc, outPath);
            Console.Out.WriteLine($"wrote {outPath}");
            return ShootdownCli.ExitOk;
        });
        return cmd;
    }

    private static double Number(object v, string col, string opt) => v switch
    {
        long l => l,
        int i => i,
        double d => d,
        float f => f,
        decimal m => (double)m,
        ulong u => u,
        bool b => b ? 1 : 0,
        _ => throw new ConfigException($"{opt} column '{col}' is not numeric (e.g. '{ParseArg.Clip(Convert.ToString(v, CultureInfo.InvariantCulture) ?? "")}')"),
    };

    /// <summary>A column by name, or the config key of that name (config.KEY).</summary>
    private static string Column(SweepStore s, string name, string opt)
    {
        if (s.ColumnNames.Contains(name))
        {
            return name;
        }
        if (s.ColumnNames.Contains("config." + name))
        {
            return "config." + name;
        }
        throw new ConfigException($"{opt} '{ParseArg.Clip(name)}' is not a column of the store; e.g. {string.Join(", ", s.ColumnNames.Where(c => !c.Contains('.', StringComparison.Ordinal)).Take(12))}, config.KEY");
    }
}

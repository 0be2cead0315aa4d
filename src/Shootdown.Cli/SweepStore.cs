using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DuckDB.NET.Data;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Cli;

/// <summary>A row of the store: column name → value (long, double, string or bool), in column order.</summary>
internal sealed class SweepRow
{
    public required string Key { get; init; }
    public List<KeyValuePair<string, object>> Columns { get; } = [];

    /// <summary>Columns that differ between equal runs (host wall time), left out of comparisons.</summary>
    public static bool IsWallTime(string column) => column is "host_wall_s" or "wall_s" or "sim_pages_per_wall_s";

    /// <summary>The row of one finished run: keys, the full config, every metric of its JSON flattened with dots.</summary>
    public static SweepRow From(SweepRun run, RunResult result, double hostWallS)
    {
        var row = new SweepRow { Key = run.Key };
        row.Columns.Add(new("run_key", run.Key));
        row.Columns.Add(new("run_index", (long)run.Index));
        if (run.Variant is int v)
        {
            row.Columns.Add(new("variant", (long)v + 1)); // which [[sweep.variants]] table, from 1
        }
        row.Columns.Add(new("host_wall_s", hostWallS));
        row.Columns.Add(new("config_json", JsonNode.Parse(run.ConfigJson)!.ToJsonString()));
        Flatten(JsonNode.Parse(result.ToJson())!.AsObject(), "", row.Columns);
        return row;
    }

    private static void Flatten(JsonObject o, string prefix, List<KeyValuePair<string, object>> into)
    {
        foreach (var (k, v) in o)
        {
            string key = prefix + k;
            switch (v)
            {
                case null:
                    break;
                case JsonObject child:
                    Flatten(child, key + ".", into);
                    break;
                case JsonArray a:
                    into.Add(new(key, a.ToJsonString()));
                    break;
                case JsonValue j:
                    switch (j.GetValueKind())
                    {
                        case JsonValueKind.String:
                            into.Add(new(key, j.GetValue<string>()));
                            break;
                        case JsonValueKind.True or JsonValueKind.False:
                            into.Add(new(key, j.GetValue<bool>()));
                            break;
                        default:
                            string t = j.ToJsonString();
                            into.Add(new(key, t.IndexOfAny(['.', 'e', 'E']) < 0 && long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l)
                                ? (object)l : double.Parse(t, CultureInfo.InvariantCulture)));
                            break;
                    }
                    break;
            }
        }
    }
}

/// <summary>
/// The sweep's DuckDB file: one table, runs, with one row per run (run_key unique). Only one
/// thread uses an instance. Each row is one transaction (new columns and the insert together), so
/// a killed sweep leaves whole rows only.
/// </summary>
internal sealed class SweepStore : IDisposable
{
    public const string Table = "runs";
    private readonly DuckDBConnection _db;
    private readonly Dictionary<string, string> _types = new(StringComparer.Ordinal);
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);

    private SweepStore(DuckDBConnection db)
    {
        _db = db;
    }

    public IReadOnlySet<string> Keys => _keys;

    /// <summary>Opens (or creates) a store; a store that cannot be opened is a <see cref="ConfigException"/> naming <paramref name="option"/>.</summary>
    public static SweepStore Open(string path, string option, bool create = true)
    {
        if (Directory.Exists(path))
        {
            throw new ConfigException($"cannot open {option} '{path}': it is a directory; give a file name");
        }
        if (!create && !File.Exists(path))
        {
            throw new ConfigException($"{option} '{path}' does not exist");
        }
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
        {
            throw new ConfigException($"cannot open {option} '{path}': directory '{dir}' does not exist");
        }
        DuckDBConnection db = new($"Data Source={path}");
        try
        {
            db.Open();
        }
        catch (DuckDBException e)
        {
            db.Dispose();
            throw new ConfigException($"cannot open {option} '{path}': {FirstLine(e.Message)}");
        }
        var store = new SweepStore(db);
        try
        {
            store.Load();
        }
        catch (DuckDBException e)
        {
            store.Dispose();
            throw new ConfigException($"{option} '{path}' is not a sweep store: {FirstLine(e.Message)}");
        }
        return store;
    }

    private static string FirstLine(string m) => m.ReplaceLineEndings("\n").Split('\n')[0];

    private void Load()
    {
        Exec($"CREATE TABLE IF NOT EXISTS {Table} (run_key VARCHAR NOT NULL, run_index BIGINT, host_wall_s DOUBLE, config_json VARCHAR)");
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = $"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{Table}' ORDER BY ordinal_position";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                _types[r.GetString(0)] = r.GetString(1);
            }
        }
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = $"SELECT run_key FROM {Table}";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                _keys.Add(r.GetString(0));
            }
        }
    }

    private void Exec(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public static string Quote(string ident) => "\"" + ident.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static string TypeOf(object v) => v switch
    {
        long => "BIGINT",
        double => "DOUBLE",
        bool => "BOOLEAN",
        _ => "VARCHAR",
    };

    /// <summary>Adds a row in one transaction (with any new columns); false if its key is already stored.</summary>
    public bool Insert(SweepRow row)
    {
        if (_keys.Contains(row.Key))
        {
            return false;
        }
        using var tx = _db.BeginTransaction();
        var pending = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (col, v) in row.Columns)
        {
            string want = TypeOf(v);
            if (!_types.TryGetValue(col, out string? have))
            {
                Exec($"ALTER TABLE {Table} ADD COLUMN {Quote(col)} {want}");
                pending[col] = want;
            }
            else if (have != want && !(have == "DOUBLE" && want == "BIGINT"))
            {
                string wider = have == "BIGINT" && want == "DOUBLE" ? "DOUBLE" : "VARCHAR";
                Exec($"ALTER TABLE {Table} ALTER COLUMN {Quote(col)} TYPE {wider}");
                pending[col] = wider;
            }
        }
        using (var cmd = _db.CreateCommand())
        {
            cmd.CommandText = $"INSERT INTO {Table} ({string.Join(", ", row.Columns.Select(c => Quote(c.Key)))}) VALUES ({string.Join(", ", row.Columns.Select(_ => "?"))})";
            foreach (var (col, v) in row.Columns)
            {
                string type = pending.TryGetValue(col, out string? p) ? p : _types[col];
                cmd.Parameters.Add(new DuckDBParameter(type == "VARCHAR" && v is not string ? Convert.ToString(v, CultureInfo.InvariantCulture)! : v));
            }
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
        foreach (var (c, t) in pending)
        {
            _types[c] = t;
        }
        _keys.Add(row.Key);
        return true;
    }

    /// <summary>Every row, in run order, with its non-null columns.</summary>
    public List<SweepRow> Rows()
    {
        var rows = new List<SweepRow>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"SELECT * FROM {Table} ORDER BY run_index, run_key";
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var row = new SweepRow { Key = r.GetString(r.GetOrdinal("run_key")) };
            for (int i = 0; i < r.FieldCount; i++)
            {
                if (!r.IsDBNull(i))
                {
                    object v = r.GetValue(i);
                    row.Columns.Add(new(r.GetName(i), v switch
                    {
                        int or short or sbyte or byte or ushort or uint => Convert.ToInt64(v, CultureInfo.InvariantCulture),
                        ulong u when u <= long.MaxValue => (long)u,
                        System.Numerics.BigInteger b when b >= long.MinValue && b <= long.MaxValue => (long)b,
                        float or decimal => Convert.ToDouble(v, CultureInfo.InvariantCulture),
                        _ => v,
                    }));
                }
            }
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>Runs a statement that returns nothing (COPY ... TO).</summary>
    public void Execute(string sql) => Exec(sql);

    /// <summary>The values of some columns (null where missing), one array per row.</summary>
    public List<object?[]> Select(params string[] columns)
    {
        var list = new List<object?[]>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = $"SELECT {string.Join(", ", columns.Select(Quote))} FROM {Table} ORDER BY run_index, run_key";
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var v = new object?[columns.Length];
            for (int i = 0; i < columns.Length; i++)
            {
                v[i] = r.IsDBNull(i) ? null : r.GetValue(i);
            }
            list.Add(v);
        }
        return list;
    }

    public IReadOnlyCollection<string> ColumnNames => _types.Keys;

    public void Dispose() => _db.Dispose();
}

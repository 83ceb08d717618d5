"""The choice and the report, on made-up rows: the fastest within the accuracy bound, ties
broken by accuracy, the closest named when nothing is within, the Pareto front."""
from __future__ import annotations

from yolox_deploy.tune.candidates import Skipped
from yolox_deploy.tune.choice import TuneRow, choose
from yolox_deploy.tune.report import CHOSEN_MARK, markdown_table, pareto_front


def row(backend, precision, speedup, delta, threads=2, role="candidate", images_per_s=None, cpu=None,
        interval=None):
    low, high = interval or (delta, delta)
    return TuneRow(backend, precision, threads, role=role, p50_ms=10 / speedup, speedup=speedup,
                   images_per_s=images_per_s or 100 * speedup, throughput_speedup=(images_per_s or 100 * speedup) / 100,
                   mAP50_95=0.3 + delta, delta_mAP50_95=delta, delta_low=low, delta_high=high,
                   uncertain=low < -0.01 <= high, cpu_ms_per_image=cpu)


def test_the_fastest_within_the_bound_wins():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0, role="reference"), row("openvino", "int8", 2.0, -0.02),
            row("onnxruntime", "int8", 1.6, -0.005), row("openvino", "fp32", 1.2, 0.0)]
    chosen, closest = choose(rows, 0.01, by_throughput=False)
    assert chosen is rows[2] and closest is None
    chosen, _ = choose(rows, 0.05, by_throughput=False)
    assert chosen is rows[1]


def test_speeds_within_three_percent_are_a_tie_won_by_accuracy_then_fewer_threads():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0), row("openvino", "int8-nncf", 1.50, -0.004),
            row("openvino", "fp32", 1.48, 0.0, threads=2), row("openvino", "fp32", 1.47, 0.0, threads=1)]
    chosen, _ = choose(rows, 0.01, by_throughput=False)
    assert (chosen.precision, chosen.threads) == ("fp32", 1)
    rows.append(row("openvino", "int8", 1.60, -0.004))  # 6.7% faster: not a tie any more
    assert choose(rows, 0.01, by_throughput=False)[0] is rows[-1]


def test_a_row_whose_interval_crosses_the_bound_is_never_chosen():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0), row("openvino", "int8", 2.0, -0.004, interval=(-0.02, 0.01))]
    assert rows[1].uncertain and not rows[1].within(0.01)
    assert choose(rows, 0.01, by_throughput=False)[0] is rows[0]
    table = markdown_table(rows, [], "labels", 0.01)
    assert "-0.0040 [-0.0200, +0.0100] | candidate, uncertain |" in table


def test_at_equal_speed_and_accuracy_the_lower_cpu_time_wins():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0, cpu=20.0), row("onnxruntime", "fp32", 1.01, 0.0, cpu=30.0)]
    assert choose(rows, 0.01, by_throughput=False)[0] is rows[0]
    rows[0].cpu_ms_per_image = 35.0
    assert choose(rows, 0.01, by_throughput=False)[0] is rows[1]


def test_throughput_mode_compares_images_per_second():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0, images_per_s=50), row("openvino", "fp32", 0.9, 0.0, images_per_s=80)]
    assert choose(rows, 0.01, by_throughput=True)[0] is rows[1]
    assert choose(rows, 0.01, by_throughput=False)[0] is rows[0]


def test_nothing_within_the_bound_names_the_closest_and_never_a_reference_only_row():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0, role="reference only"), row("openvino", "int8", 2.0, -0.03),
            row("onnxruntime", "int8", 1.6, -0.02)]
    chosen, closest = choose(rows, 0.01, by_throughput=False)
    assert chosen is None and closest is rows[2]


def test_the_table_marks_the_chosen_row_and_groups_skips_by_reason():
    rows = [row("onnxruntime", "fp32", 1.0, 0.0), row("openvino", "int8", 2.0, -0.004)]
    rows[1].chosen = True
    table = markdown_table(rows, [Skipped("ncnn fp32", "made from the checkpoint"),
                                  Skipped("torch fp32", "made from the checkpoint"), Skipped("x", "budget")], "labels")
    marked = [line for line in table.splitlines() if line.startswith(f"| {CHOSEN_MARK} ")]
    assert len(marked) == 1 and "openvino | int8" in marked[0]
    assert "- ncnn fp32, torch fp32: made from the checkpoint" in table and "Skipped (3):" in table


def test_pareto_front_keeps_what_nothing_beats_on_both_axes():
    a, b, c, d = (row("a", "fp32", 1.0, 0.0), row("b", "int8", 2.0, -0.05), row("c", "int8", 1.5, -0.06),
                  row("d", "fp16", 1.2, 0.001))
    assert pareto_front([a, b, c, d], by_throughput=False) == [b, d]


def test_the_table_says_when_a_row_was_timed_on_a_busy_machine_or_rests_on_too_few_images():
    from yolox_deploy.tune.report import markdown_table

    busy = TuneRow("ncnn", "fp32", 2, p50_ms=41.5, speedup=0.2, mAP50_95=0.3, delta_mAP50_95=0.0,
                   others_cpu_share=0.5)
    few = TuneRow("openvino", "fp32", 1, p50_ms=9.0, speedup=1.0, mAP50_95=0.3, delta_mAP50_95=0.0,
                  uncertain=True, too_few_images=True, others_cpu_share=0.1)
    table = markdown_table([busy, few], [], "labels", 0.01, images=4)
    ncnn_line, openvino_line = (line for line in table.splitlines() if line.startswith(("|  | ncnn", "|  | openvino")))
    assert "busy machine (50% CPU to others): speed does not rank" in ncnn_line and busy.busy
    assert "uncertain (interval on 4 images: too few)" in openvino_line and "busy" not in openvino_line

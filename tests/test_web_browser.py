"""The page in headless Chromium: draw a digit stroke by stroke, read the prediction, clear,
open a test-set mistake, look at a unit, keep a screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (installed by
``.ci/run``); skipped cleanly without them. Screenshots go to ``$STEADYNET_TEST_ARTIFACTS``
(default ``tests/artifacts/``).
"""

import os
import shutil

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.skipif(not os.path.exists(CHROMEDRIVER), reason="needs chromedriver (apt-get install chromium-driver)"),
    pytest.mark.mnist,
]
ARTIFACTS = os.environ.get(
    "STEADYNET_TEST_ARTIFACTS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
)


@pytest.fixture(scope="module")
def mnist_run(mnist, tmp_path_factory):
    """A 784-30-10 sigmoid model, 3 epochs on 15,000 MNIST images (a few seconds, ~92% test)."""
    import steadynet
    from steadynet.data import Dataset

    subset = Dataset(
        mnist.x_train[:15000], mnist.y_train[:15000], mnist.x_test, mnist.y_test, mnist.image_shape, "mnist"
    )
    out = tmp_path_factory.mktemp("browser") / "run"
    result = steadynet.train(out=str(out), data=subset, epochs=3, val_size=1000, augment_shift=0)
    assert result["test_accuracy"] > 0.85
    return out, subset


@pytest.fixture(scope="module")
def page(mnist_run, tmp_path_factory):
    """The server on a free loopback port, and a fresh headless Chromium looking at it."""
    from selenium.webdriver.chrome.service import Service

    from steadynet.web.server import make_server

    out, data = mnist_run
    server = make_server(out, data=data).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,1500",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        driver.get(server.url)
        wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "true")
        yield driver, server
    finally:
        driver.quit()
        server.stop()


def wait_for(driver, condition, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def settled(driver):
    """Wait until the page has no prediction in flight."""
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.busy") == "false")


def draw(driver, strokes):
    """Draw polylines on the pad with pointer events, one stroke (press, moves, release) at a time.

    ``strokes``: lists of (x, y) points in pad pixels (0-280, origin top left).
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    size = pad.size
    for points in strokes:
        # Selenium 4 offsets are from the element's centre
        x0, y0 = points[0]
        actions = ActionChains(driver, duration=10)
        actions.move_to_element_with_offset(pad, x0 - size["width"] // 2, y0 - size["height"] // 2)
        actions.click_and_hold()
        for (xa, ya), (xb, yb) in zip(points[:-1], points[1:]):
            steps = max(1, int(max(abs(xb - xa), abs(yb - ya)) // 10))
            for _ in range(steps):  # small moves, as a hand gives them
                actions.move_by_offset(round((xb - xa) / steps), round((yb - ya) / steps))
        actions.release()
        actions.perform()


def bars(driver):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#bars .bar-row")
    probabilities = [float(r.get_attribute("data-probability")) for r in rows]
    percents = [r.find_element(By.CSS_SELECTOR, ".bar-value").text for r in rows]
    return probabilities, [float(p.rstrip("%")) if p else None for p in percents]


def test_draw_clear_open_a_mistake_and_look_inside(page, mnist_run):
    from selenium.webdriver.common.by import By

    driver, server = page
    text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731

    # a "1": one vertical stroke down the middle of the pad
    draw(driver, [[(140, 40), (140, 240)]])
    settled(driver)
    assert text("top-guess") == "1", text("message")
    probabilities, percents = bars(driver)
    assert len(probabilities) == 10 and np.argmax(probabilities) == 1
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert sum(percents) == pytest.approx(100.0, abs=0.5)  # ten values rounded to 0.1%
    # what the page shows is what the API answers for the same drawing
    inp = driver.execute_script("return state.last.input")
    assert len(inp) == 784 and max(inp) == pytest.approx(1.0)

    # clear: the view resets
    driver.find_element(By.ID, "clear").click()
    assert text("top-guess") == "–"
    probabilities, percents = bars(driver)
    assert probabilities == [0] * 10 and percents == [None] * 10

    # a "7" in two strokes: the bar, then the diagonal
    draw(driver, [[(70, 60), (215, 60)], [(212, 62), (120, 245)]])
    settled(driver)
    assert text("top-guess") == "7", text("message")
    assert sum(bars(driver)[1]) == pytest.approx(100.0, abs=0.5)

    # a unit of the hidden layer: its 784 weights as a 28x28 image
    driver.find_elements(By.CSS_SELECTOR, "#hidden .unit")[3].click()
    wait_for(driver, lambda d: "unit 3" in d.find_element(By.ID, "unit-title").text)

    # the most confident mistake of the test set opens in the same view
    out, data = mnist_run
    first = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#mistakes .mistake"))[0]
    index = int(first.get_attribute("data-index"))
    model = server.inspector.model
    predicted = int(model.predict(data.x_test[index : index + 1])[0])
    assert predicted != data.y_test[index]
    first.click()
    wait_for(driver, lambda d: f"test image {index}" in d.find_element(By.ID, "source").text)
    settled(driver)
    assert text("top-guess") == str(predicted)
    assert f"labelled {data.y_test[index]}" in text("source")
    assert sum(bars(driver)[0]) == pytest.approx(1.0, abs=1e-5)

    # the run's curves are drawn (a finished run: its epochs)
    assert driver.find_element(By.ID, "run-panel").is_displayed()
    assert "completed, epoch 3 of 3" in text("run-status")

    os.makedirs(ARTIFACTS, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    path = os.path.join(ARTIFACTS, "serve.png")
    driver.save_screenshot(path)
    assert os.path.getsize(path) > 10_000

"""The default settings group coverage in other languages too: each event's articles, worded by different
outlets, in one story; two events of one language (sharing its everyday words) apart."""

from datetime import timedelta

import pytest
from test_cluster import T0, Stream

EVENTS = {
    "de-rente": [
        ("Bundestag beschließt Rentenpaket nach langer Debatte",
         "Der Bundestag hat am Freitag das umstrittene Rentenpaket beschlossen. Das Rentenniveau soll bis 2031 "
         "bei 48 Prozent gehalten werden, die Beiträge steigen ab 2028 schrittweise."),
        ("Rentenpaket: Koalition setzt Haltelinie von 48 Prozent durch",
         "Nach wochenlangem Streit stimmte eine Mehrheit der Abgeordneten für das Rentenpaket der Koalition. "
         "Die Haltelinie beim Rentenniveau von 48 Prozent gilt damit bis 2031."),
        ("Rentenniveau bleibt bei 48 Prozent – Bundestag stimmt zu",
         "Die Opposition kritisierte das Rentenpaket als zu teuer für die jüngere Generation. Arbeitsminister "
         "verteidigte die Haltelinie im Bundestag als Versprechen an Millionen Rentner."),
    ],
    "de-hochwasser": [
        ("Hochwasser in Bayern: Passau ruft Katastrophenfall aus",
         "Nach tagelangem Dauerregen hat die Stadt Passau den Katastrophenfall ausgerufen. Die Donau erreichte "
         "am Morgen einen Pegel von fast zehn Metern, Hunderte Anwohner wurden in Sicherheit gebracht."),
        ("Donau-Pegel in Passau steigt auf fast zehn Meter",
         "Feuerwehr und Technisches Hilfswerk sind in Passau im Dauereinsatz. Der Katastrophenfall gilt seit der "
         "Nacht, die Altstadt steht teilweise unter Wasser."),
        ("Katastrophenfall in Passau – Altstadt überflutet",
         "Die Hochwasserlage in Niederbayern spitzt sich zu: In Passau wurden Hunderte Menschen aus ihren "
         "Wohnungen geholt, die Donau tritt über die Ufer."),
    ],
    "fr-greve": [
        ("Grève à la SNCF : un TGV sur deux annulé jeudi",
         "Les syndicats de cheminots appellent à la grève jeudi contre la réforme des retraites. La SNCF prévoit "
         "un TGV sur deux et un tiers des TER en circulation."),
        ("Cheminots en grève jeudi, trafic très perturbé sur les TGV",
         "La direction de la SNCF annonce un trafic fortement perturbé jeudi. Les cheminots protestent contre la "
         "réforme des retraites et demandent des hausses de salaires."),
        ("Retraites : la grève des cheminots perturbe les TGV et TER",
         "Un TGV sur deux circulera jeudi selon la SNCF, qui conseille aux voyageurs de reporter leurs "
         "déplacements. Les syndicats de cheminots n'excluent pas une grève reconductible."),
    ],
    "fr-incendie": [
        ("Marseille : un incendie ravage un entrepôt du port, épais nuage de fumée",
         "Un violent incendie s'est déclaré mardi soir dans un entrepôt du port de Marseille. Les marins-pompiers "
         "ont mobilisé cent hommes, un nuage de fumée noire couvre les quartiers nord."),
        ("Incendie au port de Marseille : cent marins-pompiers mobilisés",
         "Les habitants des quartiers nord de Marseille sont invités à fermer leurs fenêtres. L'entrepôt, qui "
         "stockait des pneus, a été entièrement détruit par les flammes."),
        ("Entrepôt en feu à Marseille, la fumée visible à des kilomètres",
         "Le feu a pris dans un entrepôt de pneus sur le port. Aucun blessé n'est à déplorer, selon les "
         "marins-pompiers de Marseille."),
    ],
    "es-sismo": [
        ("Un terremoto de magnitud 7,1 sacude el norte de Chile",
         "Un fuerte terremoto de magnitud 7,1 sacudió este martes la región de Antofagasta, en el norte de Chile. "
         "El Servicio Nacional de Prevención ordenó evacuar la costa por riesgo de tsunami."),
        ("Sismo de 7,1 en Antofagasta: evacúan la costa por alerta de tsunami",
         "Miles de personas fueron evacuadas en la costa de Antofagasta tras el sismo. No se reportan víctimas, "
         "aunque hay cortes de luz en varias comunas del norte de Chile."),
        ("Chile: terremoto en Antofagasta deja cortes de luz y daños menores",
         "La alerta de tsunami fue levantada horas después del terremoto de magnitud 7,1. Las autoridades "
         "evalúan daños en viviendas de Antofagasta y Calama."),
    ],
    "es-elecciones": [
        ("Elecciones en Argentina: la participación supera el 70 % al cierre de los colegios",
         "Los colegios electorales cerraron a las 18 horas en Argentina con una participación superior al 70 %. "
         "Los primeros resultados oficiales se esperan para la noche."),
        ("Argentina vota: cierran los colegios con alta participación",
         "Millones de argentinos votaron este domingo en unas elecciones legislativas clave para el Gobierno. La "
         "participación superó el 70 % según la Cámara Nacional Electoral."),
        ("Cierre de colegios en Argentina: más del 70 % de participación en las legislativas",
         "La Cámara Nacional Electoral informó una participación superior al 70 %. El recuento provisional "
         "comenzará en las próximas horas en todo el país."),
    ],
    "ja-jishin": [
        ("北海道で震度6強の地震　津波注意報を発表",
         "北海道東部で震度6強の地震があり、気象庁は太平洋沿岸に津波注意報を発表した。"),
        ("北海道東部で震度6強　気象庁が津波注意報",
         "気象庁によると、地震の規模はマグニチュード6.8と推定される。北海道東部では停電が発生している。"),
        ("震度6強の地震　北海道で停電、津波注意報は解除",
         "北海道東部を震源とする地震で、気象庁は津波注意報を解除した。"),
    ],
    "ja-senkyo": [
        ("東京都知事選　投票率は前回を上回る見通し",
         "東京都知事選挙は7日投票が行われ、投票率は前回を上回る見通しとなった。"),
        ("都知事選、きょう投開票　投票率上昇の見込み",
         "任期満了に伴う東京都知事選挙が投開票される。都選挙管理委員会によると投票率は上昇する見込み。"),
        ("東京都知事選挙　開票作業始まる",
         "東京都知事選挙の投票が締め切られ、開票作業が始まった。"),
    ],
}


@pytest.mark.parametrize("language", ["de", "fr", "es", "ja"])
def test_coverage_in_other_languages_groups_by_event(language):
    stream = Stream()
    # the window already holds other news, the other languages' events (IDF means little over six articles)
    story_of: dict[str, set[int]] = {}
    others = [article for name in EVENTS if not name.startswith(language) for article in EVENTS[name]]
    for minutes, (title, text) in enumerate(others):
        stream.push(title, text, T0 - timedelta(hours=3) + timedelta(minutes=minutes), source="background")
    events = [name for name in EVENTS if name.startswith(language)]
    # interleaved, as feeds deliver them: A1 B1 A2 B2 A3 B3, ten minutes apart
    for round_ in range(3):
        for number, name in enumerate(events):
            title, text = EVENTS[name][round_]
            when = T0 + timedelta(minutes=10 * (2 * round_ + number))
            article, _ = stream.push(title, text, when, source=f"outlet{round_}")
            story_of.setdefault(name, set()).add(article)
    stories = {name: {stream.story_of[a] for a in articles} for name, articles in story_of.items()}
    assert all(len(found) == 1 for found in stories.values()), stories  # each event in one story
    first, second = (found.pop() for found in stories.values())
    assert first != second  # and the two events apart

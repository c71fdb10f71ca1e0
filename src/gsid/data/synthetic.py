"""A seeded synthetic marketplace: catalogue, shopper queries, a click log and graded judgments.

    from gsid.data.synthetic import make_marketplace
    ds = make_marketplace(n_items=5000, seed=0)      # a gsid Dataset named "synthetic-5000"

Every record is drawn from a known generative model (described in full in the README section
"Synthetic marketplace"), so relevance is defined exactly and every demo number has a ground
truth. The model, in one breath:

- a fixed "world": 8 departments > 35 categories > 180 product types, each type with its own
  nouns (title synonyms and query-only synonyms), up to 4 typed attributes (colour, size, wattage,
  pack count, ...) and feature words; 115 fictional brands (110 tied to one department, 5 store
  brands sold everywhere);
- items: type ~ lognormal type weights, brand ~ Zipf within its category, attribute values ~ Zipf
  over each attribute's values, latent popularity lognormal; titles written by "sellers" with
  word-order templates, synonyms, unit spellings, omitted attributes, typos, ALL-CAPS,
  marketing words and keyword stuffing;
- queries: intents (type + optional brand + optional attributes) anchored on real items, ranked
  by a popularity weight and given Zipf search counts; each intent is typed as 1..n surface
  strings (synonyms, plural, word order, unit spellings, misspellings);
- judgments: grade 3 = right type and every constraint met, 2 = right type but a constraint
  differs, 1 = same category other type, 0 = unrelated; per query a pool of relevant items,
  near misses, same-category items, lexical look-alikes and random items is judged;
- clicks: the judged pool is ranked by a simple lexical ranker (IDF-weighted query-term
  coverage of the title + popularity), the top `list_length` are shown, a shopper examines rank
  k with probability 1/k**position_bias and clicks with a probability set by grade and
  popularity; log weight = clicks, query frequency = searches.

Hand-written rather than a library: no maintained package generates e-commerce search logs with
graded relevance. Everything is vectorised numpy (strings are assembled with object-array
concatenation); Python loops run only over the few items a rare noise touches and over the query
strings.
"""

from __future__ import annotations

import functools
import logging
import re
import string
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from gsid._progress import progress_bar
from gsid.data.dataset import Dataset
from gsid.data.schema import CATEGORY_SEP
from gsid.data.splits import BucketRule, check_fractions, hash_split
from gsid.errors import check_options
from gsid.text.normalize import normalize_text

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MIN_ITEMS = 100
MAX_ITEMS = 5_000_000

# ====================================================================== the world (vocabulary)
# fmt: off
# One line per product type:  "Type label | nouns | attributes | feature words"
# - nouns: the first is canonical; a leading "?" marks a query-only synonym (shoppers type it,
#   sellers rarely write it: only keyword stuffing does).
# - attributes: `key[/unit]:v1,v2,...` (values most common first; "_" stands for a space;
#   a value like `1tb` carries its own unit). `color`, `gender`, `size`, `bed_size` alone take
#   the default value lists below. At most 4 attributes per type.
_TAXONOMY: dict[str, dict[str, list[str]]] = {
    "Electronics": {
        "TV & Video": [
            "Televisions | TV, Television, Smart TV, LED TV, ?flatscreen, ?tele | screen_size/in:55,65,50,43,75,32,85 resolution:4k,1080p,8k color:black,silver | Smart, HDR10, Dolby Vision, Ultra Slim, with Voice Remote, Frameless",
            "TV Mounts | TV Wall Mount, TV Mount, Wall Bracket, ?tv bracket | max_screen_size/in:65,55,75,85,90 mount_type:full_motion,tilting,fixed | Heavy Duty, Low Profile, Easy Install, VESA Compatible",
            "Soundbars | Soundbar, Sound Bar, Home Theater Speaker, ?tv speaker | channels/ch:2.1,3.1,5.1,2.0 power/w:120,200,300,400 color:black,white | Dolby Atmos, with Subwoofer, Bluetooth Streaming, Wall Mountable",
            "Streaming Media Players | Streaming Stick, Streaming Media Player, Streaming Device, ?media streamer | resolution:4k,1080p | with Voice Remote, HDR, Dual-Band WiFi, Plug and Play",
            "Projectors | Projector, Home Theater Projector, Mini Projector, ?movie projector | resolution:1080p,4k,720p brightness/lm:8000,5000,3000,12000 | Portable, Outdoor, WiFi, Keystone Correction",
        ],
        "Computers & Accessories": [
            "Laptops | Laptop, Notebook, Laptop Computer, ?notebook computer | screen_size/in:15.6,14,13.3,16,17.3 memory/gbram:16,8,32 storage/gb:512,256,1tb color:silver,gray,black | Backlit Keyboard, Thin and Light, Fingerprint Reader, Long Battery Life",
            "Monitors | Monitor, Computer Monitor, Gaming Monitor, Display, ?pc screen | screen_size/in:27,24,32,22,34 resolution:1080p,1440p,4k refresh_rate/hz:75,144,165,60 | IPS, Ultrawide, Eye Care, Height Adjustable, Frameless",
            "Keyboards | Keyboard, Mechanical Keyboard, Computer Keyboard | connectivity:wireless,wired color:black,white,gray | RGB Backlit, Ergonomic, Quiet Keys, Full Size",
            "Computer Mice | Mouse, Computer Mouse, Gaming Mouse, Optical Mouse | connectivity:wireless,wired color:black,white,pink,gray | Ergonomic, Silent Click, Rechargeable, Adjustable DPI",
            "External Hard Drives | External Hard Drive, Portable SSD, External SSD, Portable Hard Drive, ?backup drive | storage/gb:1tb,2tb,500,4tb interface:usb-c,usb_3.0 | Shockproof, Fast Transfer, Slim, Plug and Play",
        ],
        "Audio": [
            "Headphones | Headphones, Over-Ear Headphones, Headset, ?head phones | connectivity:wireless,wired color:black,white,blue,pink | Noise Cancelling, Foldable, Hi-Fi Sound, Built-in Mic",
            "Earbuds | Earbuds, Wireless Earbuds, In-Ear Headphones, Earphones, ?ear buds | color:black,white,blue,pink water_resistance:ipx4,ipx5,ipx7 | Noise Cancelling, Charging Case, Touch Control, Sport Fit",
            "Bluetooth Speakers | Bluetooth Speaker, Portable Speaker, Wireless Speaker | color:black,blue,red,gray battery_life/hr:12,24,10,20 | Waterproof, Loud Bass, Outdoor, Stereo Pairing",
            "Microphones | Microphone, USB Microphone, Mic, Condenser Microphone | connectivity:usb,xlr color:black,silver,white | Podcast, Streaming, Cardioid, Plug and Play",
            "Turntables | Record Player, Turntable, Vinyl Player, ?phonograph | connectivity:bluetooth,wired color:brown,black,white | 3-Speed, Built-in Speakers, Belt Drive, Vintage Style",
        ],
        "Cell Phones & Accessories": [
            "Smartphones | Smartphone, Cell Phone, Unlocked Phone, Mobile Phone, ?android phone | storage/gb:128,256,64,512 color:black,blue,white,green,purple screen_size/in:6.1,6.7,6.5 | 5G, Dual SIM, Triple Camera, Fast Charging",
            "Phone Cases | Phone Case, Protective Case, Cover, Case, ?phone cover | color:black,clear,blue,pink,red material:silicone,tpu,leather | Shockproof, Slim Fit, Wireless Charging Compatible, Raised Edges",
            "Screen Protectors | Screen Protector, Tempered Glass Protector, Glass Screen Protector | pack:2,3,1 material:tempered_glass,film | Bubble Free, Case Friendly, Anti-Scratch, Easy Installation",
            "Phone Chargers | Phone Charger, Wall Charger, Fast Charger, Charger, ?charging block | power/w:20,30,65,45 connector:usb-c,usb-a pack:1,2 | GaN, Foldable Plug, Travel Size, PD Fast Charging",
            "Power Banks | Power Bank, Portable Charger, Battery Pack, ?external battery | capacity/mah:10000,20000,5000,26800 color:black,white,blue | Slim, LED Display, Dual Output, Fast Charging",
        ],
        "Cameras & Photo": [
            "Digital Cameras | Digital Camera, Mirrorless Camera, Camera, ?dslr | resolution/mp:24,20,33,45 color:black,silver | 4K Video, Image Stabilization, Flip Screen, Kit Lens",
            "Action Cameras | Action Camera, Action Cam, Sports Camera, ?helmet camera | resolution:4k,1080p,5k color:black,blue | Waterproof, Image Stabilization, Wide Angle, Touch Screen",
            "Camera Lenses | Camera Lens, Zoom Lens, Prime Lens, Lens | focal_length/mm:50,35,85,24-70,70-200 mount:e-mount,rf-mount,z-mount | Autofocus, Fast Aperture, Weather Sealed, Compact",
            "Tripods | Tripod, Camera Tripod, Phone Tripod, ?tripod stand | height/in:60,50,67,72 material:aluminum,carbon_fiber | Lightweight, Travel, Ball Head, Quick Release",
            "Memory Cards | Memory Card, SD Card, microSD Card, ?micro sd | storage/gb:128,64,256,32,512 pack:1,2 | High Speed, U3, V30, with Adapter",
        ],
    },
    "Home & Kitchen": {
        "Kitchen Appliances": [
            "Coffee Makers | Coffee Maker, Coffee Machine, Drip Coffee Maker, ?coffee brewer | capacity/cup:12,10,5,14,4 color:black,stainless_steel,white,red | Programmable, Auto Shut-Off, Keep Warm, Reusable Filter",
            "Blenders | Blender, Countertop Blender, Personal Blender, ?smoothie maker | power/w:1000,700,1200,1500,300 capacity/floz:64,48,72,24 color:black,silver,red | Ice Crushing, Dishwasher Safe, Pulse Function, BPA Free",
            "Air Fryers | Air Fryer, Airfryer, Air Fryer Oven, ?air frier | capacity/qt:5.8,4,6,8,2,10 color:black,white,gray | Digital Touchscreen, Nonstick Basket, Oil-Free, Preset Programs",
            "Toasters | Toaster, Bread Toaster, Slice Toaster | slots/slice:2,4 color:stainless_steel,black,red,white | Wide Slot, Bagel Setting, Defrost, Removable Crumb Tray",
            "Microwaves | Microwave, Microwave Oven, Countertop Microwave | capacity/cuft:1.1,0.9,1.6,0.7,2.2 power/w:1000,900,1200,700 color:black,stainless_steel,white | Sensor Cooking, Turntable, Child Lock, Quick Start",
            "Stand Mixers | Stand Mixer, Kitchen Mixer, Electric Mixer, ?cake mixer | capacity/qt:5,4.5,6,3.5 color:red,white,black,silver,blue | Tilt-Head, 10 Speeds, Dough Hook, Splash Guard",
        ],
        "Cookware": [
            "Frying Pans | Frying Pan, Skillet, Fry Pan, ?frypan | size/in:10,12,8 material:nonstick,cast_iron,stainless_steel,carbon_steel | Induction Compatible, Oven Safe, PFOA Free, Stay-Cool Handle",
            "Saucepans | Saucepan, Sauce Pan, Pot with Lid, ?sauce pot | capacity/qt:2,3,1,4 material:stainless_steel,nonstick,copper | Glass Lid, Pour Spouts, Induction Compatible, Dishwasher Safe",
            "Dutch Ovens | Dutch Oven, Enameled Dutch Oven, Casserole Pot, ?cocotte | capacity/qt:6,5.5,4,7 color:red,blue,white,black material:cast_iron,enameled_cast_iron | Oven Safe, Self-Basting Lid, Heavy Duty",
            "Knife Sets | Knife Set, Kitchen Knife Set, Knife Block Set, ?chef knives | pieces/pc:15,14,12,6,20 material:stainless_steel,german_steel,ceramic color:black,silver | Razor Sharp, with Sharpener, Full Tang, Ergonomic Handle",
            "Cutting Boards | Cutting Board, Chopping Board, Butcher Block, ?chopping block | material:bamboo,wood,plastic pieces/pc:1,3,2 | Juice Groove, Reversible, Non-Slip, Dishwasher Safe",
            "Cookware Sets | Cookware Set, Pots and Pans Set, Pan Set, ?pots and pans | pieces/pc:10,12,8,5 material:nonstick,stainless_steel,ceramic color:black,gray,red | Induction Compatible, Dishwasher Safe, Glass Lids",
        ],
        "Bedding": [
            "Sheet Sets | Sheet Set, Bed Sheets, Sheets, ?bedsheets | bed_size material:cotton,microfiber,bamboo,linen thread_count/tc:400,600,300,800 color:white,gray,beige,navy,blue | Deep Pocket, Breathable, Wrinkle Resistant, Hotel Quality",
            "Comforters | Comforter, Duvet, Comforter Set, Duvet Insert, ?quilt | bed_size color:white,gray,navy,beige fill:down_alternative,down | All Season, Lightweight, Machine Washable, Corner Tabs",
            "Pillows | Pillow, Bed Pillow, Sleeping Pillow, ?pillows for sleeping | pillow_size:queen,standard,king fill:memory_foam,down,polyester pack:2,1,4 | Cooling, Hypoallergenic, Side Sleeper, Adjustable Loft",
            "Mattress Toppers | Mattress Topper, Mattress Pad, Foam Topper, ?bed topper | bed_size thickness/in:3,2,4 material:memory_foam,latex,down_alternative | Gel Infused, Cooling, Pressure Relief, Deep Pocket",
            "Blankets | Throw Blanket, Blanket, Throw, ?couch blanket | material:fleece,sherpa,cotton,knit color:gray,beige,white,navy,pink | Soft, Cozy, Lightweight, Machine Washable",
        ],
        "Furniture": [
            "Sofas | Sofa, Couch, Sofa Couch, Settee, ?loveseat | seats/seat:3,2,4 color:gray,beige,navy,green,brown material:fabric,velvet,leather,linen | Mid-Century Modern, Removable Cushions, Easy Assembly",
            "Office Chairs | Office Chair, Desk Chair, Computer Chair, Task Chair, ?gaming chair | color:black,gray,white,blue material:mesh,leather,fabric | Ergonomic, Lumbar Support, Adjustable Height, Swivel",
            "Bookshelves | Bookshelf, Bookcase, Shelving Unit, Book Shelf | shelves/shelf:5,4,3 color:white,black,walnut,oak material:wood,metal | Industrial, Freestanding, Open Storage, Easy Assembly",
            "TV Stands | TV Stand, Media Console, Entertainment Center, TV Console, ?tv cabinet | fits_tv/in:65,55,75,50 color:black,white,walnut,oak | with Storage, Cable Management, Farmhouse, Modern",
            "Coffee Tables | Coffee Table, Cocktail Table, Center Table, ?living room table | material:wood,glass,metal,marble shape:rectangular,round,oval color:black,white,walnut,oak | Lift Top, with Storage, Modern, Rustic",
            "Desks | Desk, Computer Desk, Writing Desk, Office Desk, ?work desk | width/in:47,40,55,63 color:white,black,walnut,oak | Home Office, with Drawers, Standing, Compact",
        ],
        "Home Decor": [
            "Area Rugs | Area Rug, Rug, Carpet, Runner Rug | rug_size/ftx:5x7,8x10,2x3,9x12 color:gray,beige,blue,red,multicolor material:polypropylene,wool,jute | Non-Shedding, Washable, Boho, Low Pile",
            "Curtains | Curtains, Drapes, Window Curtains, Curtain Panels | length/in:84,63,95,108 color:white,gray,navy,beige,black pack:2,1 | Blackout, Thermal Insulated, Grommet Top, Room Darkening",
            "Table Lamps | Table Lamp, Lamp, Desk Lamp, Bedside Lamp, ?nightstand lamp | color:black,white,gold,brass material:ceramic,metal,glass pack:1,2 | USB Port, Touch Control, Dimmable, Modern",
            "Wall Clocks | Wall Clock, Clock, Kitchen Clock | size/in:12,10,14,16 color:black,white,gold,wood | Silent Non-Ticking, Battery Operated, Large Numbers, Modern",
            "Picture Frames | Picture Frame, Photo Frame, Frame | photo_size/ph:4x6,5x7,8x10,11x14 pack:1,3,6,10 color:black,white,gold,wood | Tabletop, Wall Mount, Glass Front, Collage",
            "Candles | Candle, Scented Candle, Jar Candle, ?aromatherapy candle | scent:vanilla,lavender,sandalwood,fresh_linen,cinnamon weight/oz:12,8,14,22 | Soy Wax, Long Burning, Gift, 2-Wick",
        ],
    },
    "Tools & Home Improvement": {
        "Power Tools": [
            "Drills | Drill, Drill Driver, Power Drill, ?drill gun | voltage/v:20,18,12,40 power_source:cordless,corded color:yellow,red,blue,green,black package:kit,tool_only | Brushless, Compact, LED Light, 2-Speed",
            "Impact Drivers | Impact Driver, Impact Driver Kit, ?impact gun | voltage/v:20,18,12 color:yellow,red,blue,green,black package:kit,tool_only | Brushless, Compact, 3-Speed, LED Light",
            "Circular Saws | Circular Saw, Circ Saw, Power Saw, ?skill saw | blade_size/in:7.25,6.5,10 power_source:corded,cordless color:yellow,red,blue,green,black | Laser Guide, Electric Brake, Bevel Capacity",
            "Angle Grinders | Angle Grinder, Grinder, Disc Grinder | disc_size/in:4.5,5,7 power_source:corded,cordless color:yellow,red,blue,green,black | Paddle Switch, Side Handle, Overload Protection",
            "Sanders | Orbital Sander, Random Orbit Sander, Sander, Palm Sander | pad_size/in:5,6 power_source:corded,cordless color:yellow,red,blue,green,black | Dust Collection, Variable Speed, Low Vibration",
            "Leaf Blowers | Leaf Blower, Blower, Yard Blower | voltage/v:40,20,60,80 power_source:cordless,corded,gas | Variable Speed, Lightweight, Turbo Mode, Battery Included",
        ],
        "Hand Tools": [
            "Hammers | Hammer, Claw Hammer, Framing Hammer | weight/oz:16,20,22,28 material:steel,fiberglass,wood | Anti-Vibration, Magnetic Nail Starter, Comfort Grip",
            "Screwdriver Sets | Screwdriver Set, Screwdrivers, Precision Screwdriver Set | pieces/pc:10,6,8,24,45 | Magnetic Tips, Phillips and Flat, Cushion Grip, with Case",
            "Wrench Sets | Wrench Set, Combination Wrench Set, Spanner Set, ?wrenches | pieces/pc:10,16,8,22 measurement:sae,metric | Ratcheting, Chrome Vanadium, Roll-Up Pouch",
            "Tape Measures | Tape Measure, Measuring Tape, Tape Rule | length/ft:25,16,30,35 color:yellow,black | Magnetic Hook, Auto Lock, Shock Resistant, Belt Clip",
            "Utility Knives | Utility Knife, Box Cutter, Razor Knife | pack:1,2,3 | Retractable, Quick Change Blade, Folding, Extra Blades",
            "Pliers | Pliers Set, Pliers, Needle Nose Pliers, ?plier | pieces/pc:3,4,5,8 | Comfort Grip, Forged Steel, Wire Cutter",
        ],
        "Tool Accessories & Storage": [
            "Drill Bit Sets | Drill Bit Set, Drill Bits, Bit Set, ?drill bit kit | pieces/pc:21,13,29,100 material:titanium,cobalt,black_oxide | for Metal, for Wood, Quick Change Shank, with Case",
            "Saw Blades | Saw Blade, Circular Saw Blade, Blade | size/in:7.25,10,6.5,12 teeth/t:24,40,60 pack:1,2 | Carbide Tipped, Thin Kerf, Fine Finish",
            "Tool Boxes | Tool Box, Toolbox, Tool Chest, ?tool storage | size/in:19,16,22,26 material:plastic,metal color:black,red | Removable Tray, Metal Latches, Portable, Organizer Lid",
            "Tool Bags | Tool Bag, Tool Tote, Tool Backpack, ?tool organizer bag | size/in:16,13,18 color:black,orange,gray | Water Resistant, Padded Strap, Multiple Pockets",
            "Work Gloves | Work Gloves, Gloves, Safety Gloves, ?mechanic gloves | size material:leather,nitrile,cotton pack:1,3,6 | Touchscreen, Cut Resistant, Breathable, Grip",
        ],
        "Electrical & Lighting": [
            "LED Light Bulbs | LED Light Bulb, Light Bulb, LED Bulb, Bulbs | equivalent/w:60,40,75,100 pack:4,6,8,12,24 color_temperature:soft_white,daylight,bright_white | Dimmable, A19, E26 Base, Energy Saving",
            "Extension Cords | Extension Cord, Power Cord, Outdoor Extension Cord, ?extension cable | length/ft:25,6,10,50,100 color:orange,black,white,green | Heavy Duty, 3 Prong, Weatherproof, UL Listed",
            "Power Strips | Power Strip, Surge Protector, Outlet Strip, ?plug strip | outlets/outlet:6,8,12 cord_length/ft:6,3,10 | USB Ports, Flat Plug, Wall Mountable, UL Listed",
            "Flashlights | Flashlight, LED Flashlight, Tactical Flashlight, ?torch | brightness/lm:1000,300,2000,5000 pack:1,2,4 | Rechargeable, Waterproof, Zoomable, 5 Modes",
            "Work Lights | Work Light, LED Work Light, Shop Light, ?job site light | brightness/lm:2000,1000,5000,10000 power_source:cordless,corded | Magnetic Base, Portable, Rechargeable, Foldable Stand",
        ],
        "Plumbing": [
            "Kitchen Faucets | Kitchen Faucet, Faucet, Sink Faucet, Pull Down Faucet, ?kitchen tap | finish:brushed_nickel,chrome,matte_black,stainless_steel | Pull-Down Sprayer, Single Handle, Spot Resistant, Deck Plate",
            "Shower Heads | Shower Head, Showerhead, Rain Shower Head, Handheld Shower | finish:chrome,brushed_nickel,matte_black size/in:8,6,10,12 | High Pressure, 5 Settings, Anti-Clog Nozzles, Tool-Free Install",
            "Toilet Seats | Toilet Seat, Toilet Lid, ?commode seat | shape:elongated,round color:white,biscuit material:plastic,wood | Slow Close, Quick Release, Never Loosens",
            "Garbage Disposals | Garbage Disposal, Food Waste Disposer, Disposer | horsepower/hp:1/2,1/3,3/4,1 | Continuous Feed, Quiet, Stainless Steel Grinding, Power Cord Included",
        ],
    },
    "Grocery": {
        "Coffee & Tea": [
            "Whole Bean Coffee | Whole Bean Coffee, Coffee Beans, Whole Beans, ?beans | roast:medium,dark,light weight/oz:12,16,32 | Arabica, Single Origin, Fair Trade, Organic",
            "Ground Coffee | Ground Coffee, Drip Grind Coffee, Medium Grind Coffee, ?coffee grounds | roast:medium,dark,light weight/oz:12,24,10,30 | Arabica, Smooth, Fair Trade, Organic",
            "Coffee Pods | Coffee Pods, Single Serve Pods, Coffee Capsules, ?k cups | roast:medium,dark,light count/ct:24,12,48,72 | Recyclable, Arabica, Bold, Compatible with Keurig",
            "Tea | Tea Bags, Tea, Herbal Tea, ?teabags | flavor:green,black,chamomile,peppermint,earl_grey count/ct:20,100,40 | Organic, Caffeine Free, Individually Wrapped",
            "Sparkling Water | Sparkling Water, Seltzer, Carbonated Water, Soda Water, ?fizzy water | flavor:lime,lemon,grapefruit,unflavored,berry volume/floz:12,16.9 pack:12,8,24 | Zero Calories, No Sugar, Natural Flavors",
            "Energy Drinks | Energy Drink, Energy Drinks | flavor:original,sugar_free,tropical,berry volume/floz:16,12 pack:12,4,24 | Zero Sugar, Vitamin B, Natural Caffeine",
        ],
        "Snacks": [
            "Potato Chips | Potato Chips, Chips, Crisps, ?potato crisps | flavor:sea_salt,bbq,sour_cream_onion,salt_vinegar,jalapeno weight/oz:8,1,5,10 pack:1,10,20 | Kettle Cooked, Gluten Free, Family Size",
            "Granola Bars | Granola Bars, Snack Bars, Chewy Bars, ?granola bar | flavor:chocolate_chip,peanut_butter,oats_honey,almond count/ct:12,6,24,48 | Whole Grain, Gluten Free, Lunchbox Snack",
            "Protein Bars | Protein Bars, Protein Bar, Energy Bars | flavor:chocolate,peanut_butter,cookies_cream,vanilla protein/g:20,15,10,30 count/ct:12,6,24 | Low Sugar, Keto Friendly, Gluten Free",
            "Trail Mix | Trail Mix, Nut Mix, Snack Mix, ?mixed nuts | weight/oz:26,6,16,40 flavor:classic,tropical,chocolate | Resealable Bag, Roasted Nuts, Healthy Snack",
            "Cookies | Cookies, Cookie, Biscuits | flavor:chocolate_chip,oatmeal_raisin,sugar,double_chocolate weight/oz:13,7,18 | Soft Baked, Family Size, Individually Wrapped",
            "Crackers | Crackers, Cracker, Saltines | flavor:original,cheese,whole_wheat,sea_salt weight/oz:9,7,13 | Baked, Family Size, Snack Pack",
        ],
        "Pantry Staples": [
            "Pasta | Pasta, Spaghetti, Penne, Noodles | grain:regular,whole_wheat,gluten_free weight/lb:1,2 pack:1,4,6,12 | Durum Wheat, Imported from Italy, Non-GMO",
            "Olive Oil | Olive Oil, Extra Virgin Olive Oil, Cooking Oil, ?evoo | volume/floz:16.9,25.5,33.8,51 | Cold Pressed, Imported, Organic, Glass Bottle",
            "Rice | Rice, Jasmine Rice, Basmati Rice, Long Grain Rice | variety:jasmine,basmati,brown,white weight/lb:5,2,10,20 | Non-GMO, Gluten Free, Aromatic",
            "Peanut Butter | Peanut Butter, Nut Butter, ?pb | texture:creamy,crunchy weight/oz:16,28,40 pack:1,2 | No Stir, Natural, High Protein",
            "Breakfast Cereal | Cereal, Breakfast Cereal, Flakes, ?cereals | flavor:honey,chocolate,original,cinnamon,frosted weight/oz:12,18,24 | Whole Grain, Family Size, Kids Favorite",
        ],
        "Dairy & Eggs": [
            "Milk | Milk, Whole Milk, Dairy Milk | fat:whole,2%,1%,skim size/gal:1,0.5 | Organic, Grade A, Vitamin D",
            "Yogurt | Yogurt, Greek Yogurt, Yoghurt, ?yogourt | flavor:plain,vanilla,strawberry,blueberry,peach weight/oz:32,5.3 pack:1,4,12 | High Protein, Nonfat, Probiotic",
            "Cheese | Cheese, Shredded Cheese, Cheese Block | variety:cheddar,mozzarella,parmesan,swiss,pepper_jack weight/oz:8,16,32 form:shredded,block,sliced | Aged, Natural, Gluten Free",
            "Butter | Butter, Butter Sticks, Sweet Cream Butter | salt:salted,unsalted weight/oz:16,8 | Grass Fed, Sweet Cream, Grade AA",
            "Eggs | Eggs, Large Eggs, Fresh Eggs, ?dozen eggs | count/ct:12,18,24,6 egg_size:large,extra_large,jumbo | Cage Free, Free Range, Grade A",
        ],
    },
    "Clothing, Shoes & Accessories": {
        "Tops": [
            "T-Shirts | T-Shirt, Tee, T Shirt, Graphic Tee, ?tshirt | gender size color pack:1,3,6 | Crew Neck, Short Sleeve, Soft, Classic Fit",
            "Hoodies | Hoodie, Hooded Sweatshirt, Sweatshirt, Pullover Hoodie, ?hoody | gender size color material:cotton,fleece,polyester | Kangaroo Pocket, Drawstring, Warm",
            "Dress Shirts | Dress Shirt, Button Down Shirt, Button-Up Shirt, Oxford Shirt | gender:men,women size color:white,blue,pink,black fit:slim,regular | Wrinkle Free, Long Sleeve, Stretch",
            "Blouses | Blouse, Top, Tunic, ?womens top | size color material:chiffon,cotton,silk | V-Neck, Flowy, Casual, Long Sleeve",
            "Sweaters | Sweater, Cardigan, Pullover Sweater, Knit Sweater, ?jumper | gender size color material:wool,cashmere,cotton,acrylic | Crewneck, Cable Knit, Warm, Soft",
        ],
        "Bottoms": [
            "Jeans | Jeans, Denim Jeans, Denim, Jean | gender waist/waist:32,30,34,28,36,38 fit:slim,straight,skinny,relaxed,bootcut color:blue,black,light_wash,dark_wash | Stretch, 5-Pocket, Classic",
            "Leggings | Leggings, Yoga Pants, Workout Leggings, Tights, ?yoga leggings | gender:women,kids size color:black,navy,gray,burgundy,green | High Waisted, Squat Proof, Pockets, Buttery Soft",
            "Shorts | Shorts, Athletic Shorts, Cargo Shorts, Short | gender size color | Quick Dry, Pockets, Elastic Waist, Lightweight",
            "Skirts | Skirt, Midi Skirt, Mini Skirt, Pleated Skirt | size color material:cotton,satin,denim,chiffon | A-Line, High Waist, Flowy",
            "Dresses | Dress, Maxi Dress, Summer Dress, Sundress | size color style:maxi,midi,mini | Floral, Sleeveless, Casual, with Pockets",
        ],
        "Outerwear": [
            "Rain Jackets | Rain Jacket, Raincoat, Waterproof Jacket, Rain Shell | gender size color | Packable, Hooded, Breathable, Lightweight",
            "Winter Coats | Winter Coat, Puffer Jacket, Down Jacket, Parka | gender size color | Hooded, Insulated, Water Resistant, Warm",
            "Fleece Jackets | Fleece Jacket, Fleece, Zip Fleece, ?polar fleece | gender size color | Full Zip, Soft, Lightweight",
            "Vests | Vest, Puffer Vest, Gilet | gender size color | Quilted, Packable, Lightweight",
        ],
        "Shoes": [
            "Running Shoes | Running Shoes, Sneakers, Trainers, Athletic Shoes, ?runners | gender shoe_size/us:9,8,10,7,11,12,6 color:black,white,gray,blue,pink | Breathable, Lightweight, Cushioned, Non-Slip",
            "Boots | Boots, Ankle Boots, Work Boots, Chelsea Boots | gender shoe_size/us:9,8,10,7,11,12,6 color:black,brown,tan material:leather,suede | Waterproof, Slip-On, Steel Toe",
            "Sandals | Sandals, Slides, Flip Flops, ?thongs | gender shoe_size/us:9,8,10,7,11,12,6 color:black,brown,white | Arch Support, Cushioned, Beach",
            "Slippers | Slippers, House Slippers, Slipper | gender shoe_size/us:9,8,10,7,11,12,6 color:gray,pink,brown,navy material:memory_foam,wool,fleece | Non-Slip, Warm, Indoor Outdoor",
            "Loafers | Loafers, Slip-On Shoes, Moccasins, Loafer | gender shoe_size/us:9,8,10,7,11,12,6 color:black,brown,tan material:leather,suede | Casual, Driving, Comfort",
        ],
        "Accessories": [
            "Backpacks | Backpack, Laptop Backpack, School Bag, Rucksack, ?book bag | capacity/l:30,20,25,40 color:black,gray,navy,green material:nylon,canvas,polyester | Water Resistant, USB Charging Port, Anti-Theft",
            "Wallets | Wallet, Bifold Wallet, Card Holder, Billfold | gender material:leather,canvas,carbon_fiber color:black,brown,tan | RFID Blocking, Slim, Minimalist",
            "Sunglasses | Sunglasses, Polarized Sunglasses, Shades, Sun Glasses | gender color:black,tortoise,gold,silver style:aviator,square,round,sport | UV400, Polarized, Lightweight",
            "Watches | Watch, Wristwatch, Analog Watch, ?wrist watch | gender color:black,silver,gold,rose_gold band:leather,stainless_steel,silicone | Water Resistant, Quartz, Date Display",
            "Belts | Belt, Leather Belt, Dress Belt | gender size color:black,brown,tan material:leather,canvas | Reversible, Classic Buckle, Casual",
        ],
    },
    "Sports & Outdoors": {
        "Exercise & Fitness": [
            "Yoga Mats | Yoga Mat, Exercise Mat, Fitness Mat, Workout Mat | thickness/mm:6,4,8,10 color:purple,blue,black,pink,green material:tpe,pvc,natural_rubber | Non-Slip, with Carrying Strap, Eco Friendly",
            "Dumbbells | Dumbbells, Dumbbell Set, Hand Weights, Free Weights | weight/lb:10,5,15,20,25,50 material:neoprene,cast_iron,rubber | Pair, Hex, Anti-Roll",
            "Kettlebells | Kettlebell, Kettle Bell | weight/lb:20,15,25,35,10,45 material:cast_iron,vinyl | Wide Handle, Flat Base, Powder Coated",
            "Resistance Bands | Resistance Bands, Exercise Bands, Workout Bands, Loop Bands | pieces/pc:5,3,11 | with Handles, Door Anchor, Latex Free, Carry Bag",
            "Jump Ropes | Jump Rope, Skipping Rope, Speed Rope | length/ft:10,9,11 | Adjustable, Tangle-Free, Ball Bearings, Foam Handles",
            "Treadmills | Treadmill, Running Machine, Folding Treadmill, ?walking pad | motor/hp:2.5,2,3 | Foldable, Incline, Bluetooth, Under Desk",
        ],
        "Camping & Hiking": [
            "Tents | Tent, Camping Tent, Dome Tent, Backpacking Tent | capacity/person:4,2,6,1,8 color:green,orange,gray,blue season:3-season,4-season | Waterproof, Easy Setup, Rainfly",
            "Sleeping Bags | Sleeping Bag, Mummy Bag, Camping Sleeping Bag | temperature_rating/f:30,20,40,0 color:green,blue,red,gray | Lightweight, Compression Sack, Cold Weather",
            "Camping Chairs | Camping Chair, Folding Chair, Camp Chair, Lawn Chair | color:green,blue,red,black,gray pack:1,2,4 | Cup Holder, Portable, Heavy Duty, Carry Bag",
            "Coolers | Cooler, Ice Chest, Cooler Box | capacity/qt:45,20,65,110 color:white,blue,tan,gray style:hard,soft | Ice Retention, Wheeled, Leak Proof",
            "Headlamps | Headlamp, Head Lamp, LED Headlamp, ?head torch | brightness/lm:300,200,600,1000 pack:1,2 | Rechargeable, Waterproof, Red Light Mode",
            "Water Bottles | Water Bottle, Insulated Water Bottle, Drink Bottle, ?hydro bottle | capacity/floz:32,24,40,18,64 color:black,white,blue,green,pink material:stainless_steel,plastic,glass | Leak Proof, BPA Free, Straw Lid",
        ],
        "Cycling": [
            "Bike Helmets | Bike Helmet, Bicycle Helmet, Cycling Helmet, Helmet | size:m,l,s color:black,white,red,blue gender | Adjustable, Ventilated, LED Light",
            "Bike Locks | Bike Lock, Bicycle Lock, U-Lock, Cable Lock | lock_type:u-lock,cable,chain length/ft:6,4 | Anti-Theft, Key, Combination, Mounting Bracket",
            "Bike Lights | Bike Light, Bicycle Light, Bike Light Set | brightness/lm:800,400,1200 | USB Rechargeable, Front and Rear, Waterproof",
            "Bike Pumps | Bike Pump, Bicycle Pump, Floor Pump, Mini Pump | max_pressure/psi:160,120,100 | Presta and Schrader, Pressure Gauge, Portable",
            "Bicycles | Bike, Bicycle, Mountain Bike, Road Bike, ?cycle | wheel_size/in:26,29,27.5,24,20 color:black,red,blue,white gender speeds/speed:21,7,18 | Aluminum Frame, Disc Brakes, Front Suspension",
        ],
        "Team Sports": [
            "Soccer Balls | Soccer Ball, Football, Futbol, ?footy ball | ball_size/ball:5,4,3 color:white,blue,yellow,orange | Official Size, Machine Stitched, Training",
            "Basketballs | Basketball, Indoor Basketball, Outdoor Basketball, ?bball | ball_size/ball:7,6,5 material:rubber,composite_leather,leather | Official Size, Deep Channel, Grip",
            "Baseball Gloves | Baseball Glove, Baseball Mitt, Fielding Glove | size/in:11.5,12,10,12.75 throwing_hand:right_hand_throw,left_hand_throw | Leather, Game Ready, Youth",
            "Tennis Rackets | Tennis Racket, Tennis Racquet, Racquet | grip/grip:2,3,4,1 | Pre-Strung, Lightweight, with Cover",
            "Golf Balls | Golf Balls, Golf Ball | count/ct:12,24,36 color:white,yellow,orange | Distance, Soft Feel, Tour",
        ],
    },
    "Beauty & Personal Care": {
        "Hair Care": [
            "Shampoo | Shampoo, Hair Shampoo, Clarifying Shampoo | volume/floz:12,16.9,8.5,33.8 hair_type:all,dry,oily,curly,color_treated | Sulfate Free, Paraben Free, Moisturizing",
            "Conditioner | Conditioner, Hair Conditioner, Leave-In Conditioner | volume/floz:12,16.9,8.5,33.8 hair_type:all,dry,oily,curly,color_treated | Sulfate Free, Detangling, Moisturizing",
            "Hair Dryers | Hair Dryer, Blow Dryer, Hairdryer, ?blowdryer | power/w:1875,1600,2000,1200 color:black,pink,white | Ionic, Diffuser, Concentrator, Fast Drying",
            "Hair Straighteners | Hair Straightener, Flat Iron, Straightening Iron | plate_size/in:1,1.25,1.5 material:ceramic,titanium,tourmaline | Dual Voltage, Adjustable Temperature, Auto Shut-Off",
            "Curling Irons | Curling Iron, Curling Wand, Hair Curler | barrel_size/in:1,1.25,0.75,1.5 material:ceramic,titanium | Fast Heat Up, Cool Tip, Auto Shut-Off",
            "Hair Brushes | Hair Brush, Hairbrush, Paddle Brush, Detangling Brush | bristle:boar,nylon,wood | Detangling, Anti-Static, for All Hair Types",
        ],
        "Skin Care": [
            "Moisturizers | Moisturizer, Face Cream, Face Moisturizer, Day Cream | volume/floz:1.7,2.5,4 skin_type:dry,oily,sensitive,normal | Hydrating, Fragrance Free, Non-Comedogenic",
            "Sunscreen | Sunscreen, Sunblock, Sun Screen, ?sun cream | spf/spf:50,30,70,15,100 volume/floz:3,6,8 form:lotion,spray,stick | Water Resistant, Broad Spectrum, Reef Friendly",
            "Face Wash | Face Wash, Facial Cleanser, Cleanser, Face Cleanser | skin_type:dry,oily,sensitive,normal volume/floz:6,8,12,16 | Gentle, Foaming, Fragrance Free",
            "Face Serums | Face Serum, Serum, Facial Serum | ingredient:vitamin_c,hyaluronic_acid,retinol,niacinamide volume/floz:1,1.7 | Anti-Aging, Brightening, Dermatologist Tested",
            "Lip Balm | Lip Balm, Lip Moisturizer, Lip Care, ?chapstick | flavor:mint,vanilla,cherry,unflavored pack:3,1,4,6 | Moisturizing, SPF, Natural",
        ],
        "Oral Care": [
            "Electric Toothbrushes | Electric Toothbrush, Rechargeable Toothbrush, Sonic Toothbrush, Power Toothbrush | color:white,black,pink,blue pack:1,2 | Smart Timer, Pressure Sensor, 3 Modes, Travel Case",
            "Toothpaste | Toothpaste, Tooth Paste, Fluoride Toothpaste | flavor:mint,cool_mint,cinnamon,fresh weight/oz:4,4.8,6 pack:1,2,3,4 | Whitening, Cavity Protection, Sensitive Teeth",
            "Mouthwash | Mouthwash, Mouth Rinse, Oral Rinse, ?mouth wash | flavor:mint,cool_mint,fresh volume/floz:16.9,33.8,50.7 formula:alcohol_free,original | Antiseptic, Fresh Breath, Fluoride",
            "Dental Floss | Dental Floss, Floss, Floss Picks, ?flossers | flavor:mint,unflavored pack:1,3,6 | Waxed, Shred Resistant, Deep Clean",
        ],
        "Shaving & Grooming": [
            "Razors | Razor, Razors, Shaving Razor, Razor Blades | blades/blade:5,3 gender:men,women count/ct:4,8,12 | Refills, Lubricating Strip, Pivoting Head",
            "Electric Shavers | Electric Shaver, Electric Razor, Shaver | shaver_type:foil,rotary gender:men,women | Wet and Dry, Cordless, Pop-Up Trimmer",
            "Beard Trimmers | Beard Trimmer, Trimmer, Hair Clippers, ?beard clippers | pieces/pc:10,13,20 | Cordless, Precision, Adjustable Length, Washable",
            "Shaving Cream | Shaving Cream, Shave Gel, Shaving Foam | scent:original,sensitive,menthol,aloe weight/oz:7,10 pack:1,3 | Moisturizing, for Sensitive Skin, Rich Lather",
        ],
    },
    "Pet Supplies": {
        "Dogs": [
            "Dog Food | Dog Food, Dry Dog Food, Kibble, Dog Kibble | flavor:chicken,beef,salmon,lamb weight/lb:30,15,4,40 life_stage:adult,puppy,senior | Grain Free, Real Meat, High Protein",
            "Dog Beds | Dog Bed, Pet Bed, Orthopedic Dog Bed, ?puppy bed | size color:gray,brown,beige,blue | Washable Cover, Memory Foam, Bolster, Non-Slip",
            "Dog Leashes | Dog Leash, Leash, Lead, Retractable Leash | length/ft:6,4,16,26 color:black,red,blue,pink material:nylon,leather,rope | Reflective, Padded Handle, Heavy Duty",
            "Dog Toys | Dog Toy, Chew Toy, Squeaky Toy, Dog Chew | size pack:1,3,5,12 material:rubber,plush,rope | Durable, for Aggressive Chewers, Interactive",
            "Dog Collars | Dog Collar, Collar, Pet Collar | size color:black,red,blue,pink,green material:nylon,leather | Adjustable, Reflective, Quick Release",
        ],
        "Cats": [
            "Cat Food | Cat Food, Wet Cat Food, Dry Cat Food | flavor:chicken,tuna,salmon,turkey count/ct:12,24,32 life_stage:adult,kitten,senior | Grain Free, Real Fish, Pate",
            "Cat Litter | Cat Litter, Kitty Litter, Clumping Litter | weight/lb:20,25,10,40 scent:unscented,lavender,fresh | Odor Control, Low Dust, Clumping",
            "Cat Trees | Cat Tree, Cat Tower, Cat Condo, ?cat scratching post | height/in:52,34,60,72 color:gray,beige,brown | Scratching Posts, Hammock, Plush Perch",
            "Litter Boxes | Litter Box, Cat Litter Box, Litter Pan | style:open,covered,self_cleaning color:gray,white,blue | Odor Control, High Sides, Easy Clean",
            "Cat Toys | Cat Toys, Cat Toy, Feather Wand, Interactive Cat Toy | pack:5,1,10,20 | Catnip, Interactive, Feather, Kitten",
        ],
        "Fish & Aquatic": [
            "Aquariums | Aquarium, Fish Tank, Tank | capacity/gal:10,20,5,29,55 material:glass,acrylic | LED Lighting, Starter Kit, with Filter",
            "Aquarium Filters | Aquarium Filter, Fish Tank Filter, Filter | tank_size/gal:20,10,30,55 | Quiet, Power Filter, Biological Filtration",
            "Fish Food | Fish Food, Fish Flakes, Tropical Fish Food | weight/oz:2.2,1,7 form:flakes,pellets | Color Enhancing, Clear Water Formula",
        ],
    },
}

# Fictional brands, most popular first within each department (Zipf shares by this order).
_BRANDS: dict[str, list[str]] = {
    "Electronics": ["Voltara", "Lumetric", "Novix", "Sonique", "Pixelon", "Aurex", "Zentro", "Quantix", "Brightwave", "Halcyon", "Corvix", "Trionix", "Veltron", "Eclipso", "Nexaline"],
    "Home & Kitchen": ["Hearthwell", "Casaluna", "Copperleaf", "Maison Belle", "Oakridge Home", "Brightnest", "Willowby", "Stonebrook", "Linenly", "Cozyloom", "Cuisivo", "Ember & Oak", "Nordhaus", "Plumwood"],
    "Tools & Home Improvement": ["Torqmax", "Steelhart", "Gritline", "Forgeon", "Boltwerk", "Ridgeback", "Kestrel Pro", "Hammerstone", "Duratek", "Anvilco", "Titanex", "Rivetta", "Ironpeak"],
    "Grocery": ["Golden Acre", "Meadowfield", "Sunny Orchard", "Harvest Lane", "Pure Prairie", "Big Sky Farms", "Nutterly", "Crisp & Co", "Bramblewood", "Morning Ridge", "Blue Hollow", "Sweetfern", "Old Mill", "Coastal Roasters"],
    "Clothing, Shoes & Accessories": ["Northbay", "Urban Thread", "Velora", "Driftline", "Marlowe", "Peakstride", "Indigo Row", "Solenne", "Cobalt Cove", "Thistle & Pine", "Stridewell", "Fenwick Lane", "Arlo & Eve", "Kinfolk Denim"],
    "Sports & Outdoors": ["Trailforge", "Summitry", "Pacefit", "Ironloop", "Basecamp Co", "Kinetix", "Wildpath", "Veloroo", "Aerostride", "Coreflex", "Riverbend", "Apexon", "Strikezone", "Camptrail"],
    "Beauty & Personal Care": ["Lumiere", "Aloha Glow", "Velvetine", "PureBloom", "Dermique", "Silkara", "Bellanova", "Glowell", "Mintique", "Smooth Edge", "Brightsmile", "Oralis", "Shavewell", "Tressa"],
    "Pet Supplies": ["Pawsome", "Happy Tails", "Furrbest", "WhiskerWorks", "Nutripaw", "Tailwise", "Kibbleton", "Fetchly", "Aquaverde", "Purrfect Co", "Meadow Pup", "Finley Aqua"],
}
# Store brands sold in every department (at a lower share than a department's top brands).
_STORE_BRANDS = ["Basics Plus", "EverydayMart", "ValueLine", "Homestead Goods", "Simplee"]

_DEFAULT_VALUES = {
    "color": "black,white,gray,blue,red,silver,navy,green,pink,beige,brown",
    "gender": "men,women,kids",
    "size": "m,l,s,xl,xxl",
    "bed_size": "queen,king,full,twin",
}

_DEFAULT_UNITS = {"pack": "pack"}

# unit key -> (canonical JSON format, title spellings, query spellings); "{v}" is the number.
_UNITS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "in": ("{v} in", ("{v} Inch", '{v}"', "{v}in", "{v}-Inch", "{v} in.", "{v} Inches"), ("{v} inch", "{v}in", '{v}"', "{v} in", "{v} inches")),
    "gb": ("{v} GB", ("{v}GB", "{v} GB", "{v}gb"), ("{v}gb", "{v} gb")),
    "tb": ("{v} TB", ("{v}TB", "{v} TB", "{v}tb"), ("{v}tb", "{v} tb")),
    "gbram": ("{v} GB", ("{v}GB RAM", "{v} GB Memory", "{v}GB", "{v}G RAM"), ("{v}gb ram", "{v}gb", "{v} gb ram")),
    "w": ("{v} W", ("{v}W", "{v} Watt", "{v}-Watt", "{v} Watts", "{v}w"), ("{v}w", "{v} watt", "{v} watts")),
    "v": ("{v} V", ("{v}V", "{v}V MAX", "{v} Volt", "{v}-Volt", "{v}v"), ("{v}v", "{v} volt", "{v}-volt")),
    "ch": ("{v} channel", ("{v} Channel", "{v}Ch", "{v}-Channel", "{v} CH"), ("{v} channel", "{v}ch")),
    "hz": ("{v} Hz", ("{v}Hz", "{v} Hz", "{v}HZ"), ("{v}hz", "{v} hz")),
    "hr": ("{v} hours", ("{v}H Playtime", "{v} Hour Battery", "{v}-Hour", "{v}Hrs"), ("{v} hour", "{v}hr")),
    "mah": ("{v} mAh", ("{v}mAh", "{v} mAh", "{v}MAH"), ("{v}mah", "{v} mah")),
    "mp": ("{v} MP", ("{v}MP", "{v} MP", "{v} Megapixel", "{v}-Megapixel"), ("{v}mp", "{v} megapixel")),
    "mm": ("{v} mm", ("{v}mm", "{v} mm", "{v}MM"), ("{v}mm", "{v} mm")),
    "lm": ("{v} lm", ("{v} Lumens", "{v}lm", "{v} LM", "{v}-Lumen"), ("{v} lumen", "{v} lumens", "{v}lm")),
    "cup": ("{v} cup", ("{v}-Cup", "{v} Cup", "{v} Cups", "{v}C"), ("{v} cup", "{v}-cup", "{v} cups")),
    "qt": ("{v} qt", ("{v} Qt", "{v}-Quart", "{v} Quart", "{v}QT", "{v} qt."), ("{v} qt", "{v} quart", "{v}qt")),
    "floz": ("{v} fl oz", ("{v} fl oz", "{v} Fl. Oz.", "{v}oz", "{v} Ounce", "{v} FL OZ"), ("{v} oz", "{v}oz", "{v} ounce", "{v} fl oz")),
    "oz": ("{v} oz", ("{v} oz", "{v}oz", "{v} Ounce", "{v}-Ounce", "{v} OZ"), ("{v} oz", "{v}oz", "{v} ounce")),
    "l": ("{v} L", ("{v}L", "{v} Liter", "{v} Litre", "{v} L"), ("{v}l", "{v} liter", "{v} l")),
    "lb": ("{v} lb", ("{v} lb", "{v} lbs", "{v}-Pound", "{v}lb", "{v} Pound"), ("{v} lb", "{v}lb", "{v} pound", "{v} lbs")),
    "gal": ("{v} gal", ("{v} Gallon", "{v} gal", "{v}-Gallon", "{v}gal"), ("{v} gallon", "{v} gal")),
    "cuft": ("{v} cu ft", ("{v} cu. ft.", "{v} Cu Ft", "{v} Cubic Feet", "{v}cuft"), ("{v} cu ft", "{v} cubic feet")),
    "ft": ("{v} ft", ("{v} ft", "{v}ft", "{v}-Foot", "{v}'", "{v} Feet", "{v} ft."), ("{v} ft", "{v}ft", "{v} foot", "{v} feet")),
    "ftx": ("{v} ft", ("{v}", "{v} ft", "{v}'", "{v} Feet"), ("{v}", "{v} ft", "{v} rug")),
    "ph": ("{v} in", ("{v}", "{v} inch", '{v}"', "{v}in"), ("{v}", "{v} inch")),
    "pc": ("{v} pieces", ("{v}-Piece", "{v} Piece", "{v} pc", "{v}pcs", "{v} Pcs"), ("{v} piece", "{v} pc", "{v} pcs")),
    "pack": ("{v} pack", ("{v} Pack", "Pack of {v}", "{v}-Pack", "{v}pk", "{v} PK"), ("{v} pack", "pack of {v}", "{v}pk")),
    "ct": ("{v} count", ("{v} Count", "{v}ct", "{v} ct", "{v}-Count", "{v} Ct."), ("{v} count", "{v} ct", "{v}ct")),
    "slice": ("{v} slice", ("{v}-Slice", "{v} Slice", "{v} Slot"), ("{v} slice", "{v} slot")),
    "seat": ("{v} seats", ("{v}-Seater", "{v} Seat", "{v} Seater"), ("{v} seater", "{v} seat")),
    "shelf": ("{v} shelves", ("{v}-Shelf", "{v} Tier", "{v} Shelves"), ("{v} shelf", "{v} tier")),
    "outlet": ("{v} outlets", ("{v} Outlet", "{v}-Outlet", "{v} AC Outlets"), ("{v} outlet", "{v} outlets")),
    "tc": ("{v} thread count", ("{v} Thread Count", "{v} TC", "{v}TC"), ("{v} thread count", "{v} tc")),
    "t": ("{v} teeth", ("{v}T", "{v} Tooth", "{v}-Teeth"), ("{v}t", "{v} tooth")),
    "hp": ("{v} HP", ("{v} HP", "{v}HP", "{v} Horsepower"), ("{v} hp", "{v}hp")),
    "psi": ("{v} psi", ("{v} PSI", "{v}psi", "{v} Psi"), ("{v} psi", "{v}psi")),
    "person": ("{v} person", ("{v} Person", "{v}-Person", "{v}P", "{v} Man"), ("{v} person", "{v} man")),
    "f": ("{v} F", ("{v} Degree", "{v}°F", "{v}F", "{v} Degrees F"), ("{v} degree", "{v}f")),
    "spf": ("SPF {v}", ("SPF {v}", "SPF{v}", "{v} SPF"), ("spf {v}", "spf{v}")),
    "us": ("US {v}", ("Size {v}", "US {v}", "{v} US", "Sz {v}"), ("size {v}", "{v}")),
    "waist": ("{v} in waist", ("{v}W", "W{v}", "{v} Waist", "Waist {v}"), ("{v} waist", "{v}w")),
    "ball": ("size {v}", ("Size {v}", "Sz {v}", "#{v}"), ("size {v}",)),
    "grip": ("grip {v}", ("Grip {v}", "Grip Size {v}", "G{v}"), ("grip {v}",)),
    "blade": ("{v} blades", ("{v}-Blade", "{v} Blade", "{v} Blades"), ("{v} blade",)),
    "speed": ("{v} speed", ("{v}-Speed", "{v} Speed", "{v}Speed"), ("{v} speed",)),
    "g": ("{v} g protein", ("{v}g Protein", "{v} Grams Protein", "{v}G Protein"), ("{v}g protein", "{v}g")),
}

# Categorical values with several spellings: value -> (title spellings, query spellings).
_VALUE_FORMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gray": (("Gray", "Grey", "GRY", "Charcoal Gray"), ("gray", "grey")),
    "navy": (("Navy", "Navy Blue", "Dark Blue"), ("navy", "navy blue")),
    "black": (("Black", "BLK", "Matte Black", "Jet Black"), ("black",)),
    "white": (("White", "WHT", "Bright White"), ("white",)),
    "silver": (("Silver", "Metallic Silver", "SLV"), ("silver",)),
    "beige": (("Beige", "Cream", "Taupe"), ("beige", "cream")),
    "multicolor": (("Multicolor", "Multi", "Multi-Color"), ("multicolor", "multi color")),
    "rose_gold": (("Rose Gold", "Rose-Gold"), ("rose gold",)),
    "4k": (("4K", "4K UHD", "Ultra HD", "2160p"), ("4k", "uhd", "4k uhd")),
    "1080p": (("1080p", "Full HD", "FHD"), ("1080p", "full hd", "hd")),
    "1440p": (("1440p", "QHD", "2K"), ("1440p", "qhd", "2k")),
    "8k": (("8K", "8K UHD"), ("8k",)),
    "5k": (("5K", "5.3K"), ("5k",)),
    "720p": (("720p", "HD Ready"), ("720p",)),
    "cordless": (("Cordless", "Battery Powered", "Battery-Operated"), ("cordless", "battery")),
    "corded": (("Corded", "Corded Electric", "Electric"), ("corded", "electric")),
    "gas": (("Gas", "Gas Powered", "2-Cycle Gas"), ("gas",)),
    "wireless": (("Wireless", "Bluetooth", "2.4G Wireless"), ("wireless", "bluetooth", "bt")),
    "wired": (("Wired", "USB Wired", "Corded"), ("wired",)),
    "bluetooth": (("Bluetooth", "Wireless BT"), ("bluetooth", "bt")),
    "usb": (("USB", "USB Plug and Play"), ("usb",)),
    "xlr": (("XLR", "XLR Studio"), ("xlr",)),
    "usb-c": (("USB-C", "USB C", "Type-C"), ("usb c", "usb-c", "type c")),
    "usb-a": (("USB-A", "USB A"), ("usb a", "usb")),
    "usb_3.0": (("USB 3.0", "USB3.0"), ("usb 3.0", "usb3")),
    "stainless_steel": (("Stainless Steel", "Stainless", "SS", "18/8 Stainless Steel"), ("stainless steel", "stainless")),
    "cast_iron": (("Cast Iron", "Cast-Iron", "Pre-Seasoned Cast Iron"), ("cast iron",)),
    "enameled_cast_iron": (("Enameled Cast Iron", "Enamel Cast Iron"), ("enameled cast iron", "enamel")),
    "nonstick": (("Nonstick", "Non-Stick", "Non Stick"), ("nonstick", "non stick")),
    "tempered_glass": (("Tempered Glass", "9H Glass"), ("tempered glass", "glass")),
    "tpu": (("TPU", "Soft TPU"), ("tpu",)),
    "memory_foam": (("Memory Foam", "Gel Memory Foam"), ("memory foam",)),
    "down_alternative": (("Down Alternative", "Down-Alternative"), ("down alternative",)),
    "men": (("Men's", "Mens", "for Men", "Men"), ("mens", "men's", "men", "for men")),
    "women": (("Women's", "Womens", "for Women", "Ladies"), ("womens", "women's", "women", "ladies")),
    "kids": (("Kids'", "Kids", "Boys & Girls", "Youth"), ("kids", "kids'", "youth", "childrens")),
    "s": (("Small", "S", "Size S", "SM"), ("small", "size s")),
    "m": (("Medium", "M", "Size M", "Med"), ("medium", "size m")),
    "l": (("Large", "L", "Size L", "LG"), ("large", "size l")),
    "xl": (("X-Large", "XL", "Extra Large", "Size XL"), ("xl", "extra large")),
    "xxl": (("XX-Large", "XXL", "2XL", "2X"), ("xxl", "2xl")),
    "queen": (("Queen", "Queen Size", "QN"), ("queen", "queen size")),
    "king": (("King", "King Size", "KG"), ("king", "king size")),
    "full": (("Full", "Full Size", "Double"), ("full", "full size", "double")),
    "twin": (("Twin", "Twin Size", "Single"), ("twin", "twin size")),
    "full_motion": (("Full Motion", "Full-Motion", "Articulating", "Swivel Tilt"), ("full motion", "swivel")),
    "tilting": (("Tilting", "Tilt"), ("tilting", "tilt")),
    "tool_only": (("Tool Only", "Bare Tool", "(Tool Only)"), ("tool only", "bare tool")),
    "kit": (("Kit", "with Battery and Charger", "Combo Kit"), ("kit", "with battery")),
    "sae": (("SAE", "Inch"), ("sae",)),
    "metric": (("Metric", "MM"), ("metric",)),
    "sour_cream_onion": (("Sour Cream & Onion", "Sour Cream and Onion"), ("sour cream onion", "sour cream and onion")),
    "salt_vinegar": (("Salt & Vinegar", "Salt and Vinegar"), ("salt and vinegar", "salt vinegar")),
    "bbq": (("BBQ", "Barbecue", "Bar-B-Q"), ("bbq", "barbecue")),
    "cookies_cream": (("Cookies & Cream", "Cookies and Cream"), ("cookies and cream", "cookies n cream")),
    "oats_honey": (("Oats & Honey", "Oats 'n Honey"), ("oats and honey", "oats honey")),
    "2%": (("2% Reduced Fat", "2%", "Reduced Fat 2%"), ("2%", "2 percent", "reduced fat")),
    "1%": (("1% Low Fat", "1%", "Lowfat 1%"), ("1%", "1 percent", "low fat")),
    "skim": (("Skim", "Fat Free", "Nonfat"), ("skim", "fat free")),
    "u-lock": (("U-Lock", "U Lock", "Shackle"), ("u lock", "u-lock")),
    "3-season": (("3-Season", "3 Season", "Three Season"), ("3 season",)),
    "4-season": (("4-Season", "4 Season", "All Season"), ("4 season", "winter")),
    "right_hand_throw": (("Right Hand Throw", "RHT"), ("right hand throw", "rht")),
    "left_hand_throw": (("Left Hand Throw", "LHT"), ("left hand throw", "lefty")),
    "ipx4": (("IPX4", "IPX4 Sweatproof"), ("ipx4",)),
    "ipx5": (("IPX5", "IPX5 Waterproof"), ("ipx5",)),
    "ipx7": (("IPX7", "IPX7 Waterproof"), ("ipx7", "waterproof")),
    "e-mount": (("E-Mount", "E Mount"), ("e mount",)),
    "rf-mount": (("RF-Mount", "RF Mount"), ("rf mount",)),
    "z-mount": (("Z-Mount", "Z Mount"), ("z mount",)),
    "tpe": (("TPE", "Eco TPE"), ("tpe",)),
    "pvc": (("PVC",), ("pvc",)),
    "self_cleaning": (("Self-Cleaning", "Self Cleaning", "Automatic"), ("self cleaning", "automatic")),
    "alcohol_free": (("Alcohol-Free", "Alcohol Free", "Zero Alcohol"), ("alcohol free",)),
    "vitamin_c": (("Vitamin C", "Vit C", "Vitamin-C"), ("vitamin c",)),
    "color_treated": (("Color-Treated", "for Color Treated Hair", "Color Safe"), ("color treated", "color safe")),
    "light_wash": (("Light Wash", "Light Blue"), ("light wash",)),
    "dark_wash": (("Dark Wash", "Dark Indigo"), ("dark wash",)),
}

_MARKETING_PREFIX = ["NEW", "NEW!", "2024 NEW", "Best Seller", "[Upgraded]", "HOT SALE", "Top Rated", "Premium", "Original", "Latest", "Amazing"]
_MARKETING_SUFFIX = ["- Best Seller", "| Free Shipping", "(Top Rated)", "- NEW", "Great Gift", "Hot Sale", "Fast Shipping", "Limited Edition", "2024 Model", "- 100% Satisfaction"]
_STUFFING_EXTRA = ["gift", "best", "cheap", "sale", "deal", "top", "quality", "new", "2024", "for home", "for men women", "christmas gift"]
_DESC_OPENERS = ["Meet the {b} {n}.", "The {b} {n} is built for everyday use.", "Upgrade your routine with this {n} from {b}.", "{b} presents its {n}.", "This {n} by {b} combines quality and value."]
_DESC_CLOSERS = {
    "Electronics": ["Backed by a 1-year limited warranty.", "Easy setup in minutes.", "Works with your favorite devices."],
    "Home & Kitchen": ["Makes a great housewarming gift.", "Easy to clean and built to last.", "Designed for modern homes."],
    "Tools & Home Improvement": ["Built for pros and DIYers alike.", "Tough enough for the job site.", "Backed by a 3-year warranty."],
    "Grocery": ["Enjoy it any time of day.", "Store in a cool, dry place.", "A pantry favorite for families."],
    "Clothing, Shoes & Accessories": ["Machine washable.", "True to size; see the size chart.", "Comfortable from morning to night."],
    "Sports & Outdoors": ["Ready for your next adventure.", "Built for training and the outdoors.", "Lightweight and easy to carry."],
    "Beauty & Personal Care": ["Dermatologist tested.", "Suitable for daily use.", "Cruelty free."],
    "Pet Supplies": ["Your pet will love it.", "Vet recommended.", "Made for happy, healthy pets."],
}
# Words that never make two types "confusable" on their own.
_GENERIC_WORDS = {"set", "kit", "with", "and", "for", "the", "of", "pack", "case", "top", "short", "filter", "frame", "lens", "cover"}

# fmt: on

_SLOTS = 5  # slot 0 = brand, slots 1..4 = the type's attributes
_MAX_ATTRS = _SLOTS - 1


# ====================================================================== configuration
@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the generator (all documented in the README section). Pass any of them
    to make_marketplace as keyword options."""

    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    relevance_threshold: float = 2.5
    bucket_rule: BucketRule = field(default_factory=BucketRule)
    with_descriptions: bool = True
    # catalogue
    type_sigma: float = 0.6  # lognormal spread of product-type sizes
    brand_zipf: float = 1.1  # Zipf exponent of brand shares within a category
    value_zipf: float = 0.8  # Zipf exponent of attribute-value shares
    popularity_sigma: float = 1.0  # lognormal sigma of the latent item popularity
    title_noun_canonical: float = 0.55  # share of titles using the type's canonical noun
    title_attr_omit: float = 0.3  # chance that an attribute is missing from the title
    json_attr_omit: float = 0.1  # chance that an attribute is missing from `attributes`
    brand_omit: float = 0.04  # chance that the brand is missing from the title
    title_typo_rate: float = 0.05  # share of titles with one typo
    caps_rate: float = 0.04  # share of ALL-CAPS titles
    marketing_rate: float = 0.2  # share of titles with marketing words
    stuffing_rate: float = 0.06  # share of titles with keyword stuffing
    model_code_rate: float = 0.35  # share of titles with a model code (e.g. "VO-2041")
    # queries
    query_zipf: float = 0.8  # Zipf exponent of searches over intents ranked by appeal
    searches_per_query: float = 20.0  # mean searches per intent before thinning
    query_noun_canonical: float = 0.6  # share of queries using the canonical noun
    query_typo_rate: float = 0.03  # typo chance of an intent's main spelling
    variant_typo_rate: float = 0.5  # typo chance of each extra spelling
    # judgments
    # judged grade-3 items per query (all when fewer exist); None: auto_judged_relevant(n_items)
    judged_relevant: int | None = None
    judged_near: int = 8  # same type, a constraint differs (grade 2)
    judged_category: int = 4  # same category, other type (grade 1)
    judged_lexical: int = 4  # items of look-alike types ("tv" -> "tv mount")
    judged_random: int = 3  # random items
    # clicks
    list_length: int = 10  # results shown per search
    position_bias: float = 1.0  # P(examine rank k) = 1 / k**position_bias
    click_prob: tuple[float, float, float, float] = (0.01, 0.03, 0.1, 0.3)  # by grade 0..3

    def __post_init__(self) -> None:
        check_fractions(self.split_fractions)
        if not isinstance(self.bucket_rule, BucketRule):
            raise ValueError(
                f"bucket_rule must be a BucketRule, got {type(self.bucket_rule).__name__}"
            )
        for name in ("title_noun_canonical", "title_attr_omit", "json_attr_omit", "brand_omit",
                     "title_typo_rate", "caps_rate", "marketing_rate", "stuffing_rate",
                     "model_code_rate", "query_noun_canonical", "query_typo_rate",
                     "variant_typo_rate"):  # fmt: skip
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} is a probability and must lie in [0, 1], got {v!r}")
        for name in ("type_sigma", "brand_zipf", "value_zipf", "popularity_sigma", "query_zipf",
                     "position_bias"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.searches_per_query <= 0:
            raise ValueError(f"searches_per_query must be > 0, got {self.searches_per_query!r}")
        for name in ("judged_relevant", "list_length"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("judged_near", "judged_category", "judged_lexical", "judged_random"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if len(self.click_prob) != 4 or not all(0 <= p <= 1 for p in self.click_prob):
            raise ValueError(
                f"click_prob must be 4 probabilities (grades 0..3), got {self.click_prob!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bucket_rule"] = self.bucket_rule.to_dict()
        d["split_fractions"] = list(self.split_fractions)
        d["click_prob"] = list(self.click_prob)
        return d


OPTIONS = tuple(f.name for f in fields(SyntheticConfig))


# ====================================================================== the compiled world
@dataclass
class _World:
    """The vocabulary compiled into arrays. Seed-independent: every catalogue of every seed
    lives in the same world; only the sampling differs."""

    dept_names: list[str]
    cat_names: list[str]  # "Dept > Category"
    type_paths: list[str]  # "Dept > Category > Type"
    type_cat: np.ndarray  # (T,)
    type_dept: np.ndarray  # (T,)
    type_z: np.ndarray  # (T,) standard-normal draw behind the lognormal type size
    title_nouns: list[list[str]]
    query_nouns: list[list[str]]  # lower case; title nouns first, then query-only synonyms
    features: list[list[str]]
    slot_def: np.ndarray  # (T, 4) attribute definition of each slot, -1 where none
    n_slots: np.ndarray  # (T,)
    def_key: list[str]
    def_off: np.ndarray  # (D + 1,) global value index = def_off[d] + local value
    def_zipf_rank: np.ndarray  # (GV,) 1-based rank of a value within its definition
    value_canon: list[str]  # (GV,) canonical spelling (JSON, descriptions)
    value_title_forms: list[tuple[str, ...]]  # (GV,)
    value_query_forms: list[tuple[str, ...]]  # (GV,)
    brands: list[str]
    brand_rank: np.ndarray  # (B,) 1-based popularity rank within its department
    cat_brands: list[np.ndarray]  # per category: brand ids sold there
    confusable: list[np.ndarray]  # per type: types whose nouns share a word with it

    @property
    def n_types(self) -> int:
        return len(self.type_paths)


def _smart_title(value: str) -> str:
    return " ".join(w if w[:1].isdigit() else w[:1].upper() + w[1:] for w in value.split(" "))


_VALUE_WITH_UNIT = re.compile(r"^([\d.]+)([a-z]+)$")


def _value_forms(raw: str, unit: str | None) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(canonical, title spellings, query spellings) of one attribute value."""
    if unit is not None:
        m = _VALUE_WITH_UNIT.match(raw)
        if m and m.group(2) in _UNITS:  # a value such as "1tb" carries its own unit
            raw, unit = m.group(1), m.group(2)
        v = raw.replace("_", " ")
        canon, title, query = _UNITS[unit]
        return (
            canon.format(v=v),
            tuple(f.format(v=v) for f in title),
            tuple(f.format(v=v) for f in query),
        )
    if raw in _VALUE_FORMS:
        title, query = _VALUE_FORMS[raw]
        return raw.replace("_", " "), title, query
    v = raw.replace("_", " ")
    return v, (_smart_title(v),), (v.lower(),)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@functools.lru_cache(maxsize=1)
def _world() -> _World:
    wrng = np.random.default_rng(20240611)  # fixed: the world does not depend on the seed
    dept_names: list[str] = []
    cat_names: list[str] = []
    type_paths, type_cat, type_dept = [], [], []
    title_nouns, query_nouns, features, slot_rows = [], [], [], []
    def_key: list[str] = []
    def_off = [0]
    zipf_rank: list[int] = []
    canon: list[str] = []
    tforms: list[tuple[str, ...]] = []
    qforms: list[tuple[str, ...]] = []
    def_index: dict[tuple[str, str | None, str], int] = {}
    noun_owner: dict[str, str] = {}
    for dept, cats in _TAXONOMY.items():
        dept_names.append(dept)
        for cat, types in cats.items():
            cat_names.append(f"{dept}{CATEGORY_SEP}{cat}")
            for line in types:
                label, nouns, attrs, feats = (p.strip() for p in line.split("|"))
                path = f"{dept}{CATEGORY_SEP}{cat}{CATEGORY_SEP}{label}"
                tn = [n.strip() for n in nouns.split(",") if not n.strip().startswith("?")]
                qo = [n.strip()[1:].strip() for n in nouns.split(",") if n.strip().startswith("?")]
                for n in tn + qo:
                    owner = noun_owner.setdefault(n.lower(), path)
                    if owner != path:  # an ambiguous noun would make relevance ill-defined
                        raise AssertionError(f"noun {n!r} used by {owner} and {path}")
                type_paths.append(path)
                type_cat.append(len(cat_names) - 1)
                type_dept.append(len(dept_names) - 1)
                title_nouns.append(tn)
                query_nouns.append([n.lower() for n in tn + qo])
                features.append([f.strip() for f in feats.split(",") if f.strip()])
                row = []
                for spec in attrs.split():
                    head, _, vals = spec.partition(":")
                    key, _, unit = head.partition("/")
                    unit = unit or _DEFAULT_UNITS.get(key)
                    vals = vals or _DEFAULT_VALUES[key]
                    ident = (key, unit, vals)
                    if ident not in def_index:
                        def_index[ident] = len(def_key)
                        def_key.append(key.replace("_", " "))
                        for r, raw in enumerate(vals.split(","), start=1):
                            c, t, q = _value_forms(raw, unit)
                            canon.append(c)
                            tforms.append(t)
                            qforms.append(q)
                            zipf_rank.append(r)
                        def_off.append(len(canon))
                    row.append(def_index[ident])
                keys = [def_key[d] for d in row]
                if len(row) > _MAX_ATTRS or len(set(keys)) != len(keys):
                    raise AssertionError(f"{path}: at most {_MAX_ATTRS} distinct attributes")
                slot_rows.append(row + [-1] * (_MAX_ATTRS - len(row)))
    T = len(type_paths)
    type_cat_a = np.asarray(type_cat)
    # brands: department brands are sold in a fixed random subset of their department's
    # categories (at least 2 per category); store brands everywhere
    brands: list[str] = []
    brand_rank: list[int] = []
    cat_brand_lists: list[list[int]] = [[] for _ in cat_names]
    cat_dept = np.asarray([dept_names.index(c.split(CATEGORY_SEP)[0]) for c in cat_names])
    for d, dept in enumerate(dept_names):
        cats = np.flatnonzero(cat_dept == d)
        ids = []
        for r, b in enumerate(_BRANDS[dept], start=1):
            ids.append(len(brands))
            brands.append(b)
            brand_rank.append(r)
        active = wrng.random((len(ids), len(cats))) < 0.6
        for j, c in enumerate(cats):
            if active[:, j].sum() < 2:
                active[wrng.choice(len(ids), 2, replace=False), j] = True
            cat_brand_lists[c].extend(ids[i] for i in np.flatnonzero(active[:, j]))
    for j, b in enumerate(_STORE_BRANDS):
        bid = len(brands)
        brands.append(b)
        brand_rank.append(6 + 3 * j)  # a store brand sells like a department's 6th..18th brand
        for lst in cat_brand_lists:
            lst.append(bid)
    # look-alike types: nouns share a content word ("tv" / "tv mount", "coffee beans" / "coffee table")
    words = [
        {w for n in qn for w in _words(n) if len(w) > 2 and w not in _GENERIC_WORDS}
        for qn in query_nouns
    ]
    confusable = [
        np.asarray([u for u in range(T) if u != t and words[t] & words[u]], dtype=np.int64)
        for t in range(T)
    ]
    return _World(
        dept_names=dept_names,
        cat_names=cat_names,
        type_paths=type_paths,
        type_cat=type_cat_a,
        type_dept=np.asarray(type_dept),
        type_z=wrng.standard_normal(T),
        title_nouns=title_nouns,
        query_nouns=query_nouns,
        features=features,
        slot_def=np.asarray(slot_rows, dtype=np.int64).reshape(T, _MAX_ATTRS),
        n_slots=np.asarray([sum(1 for d in r if d >= 0) for r in slot_rows]),
        def_key=def_key,
        def_off=np.asarray(def_off),
        def_zipf_rank=np.asarray(zipf_rank, dtype=np.float64),
        value_canon=canon,
        value_title_forms=tforms,
        value_query_forms=qforms,
        brands=brands,
        brand_rank=np.asarray(brand_rank, dtype=np.float64),
        cat_brands=[np.asarray(lst, dtype=np.int64) for lst in cat_brand_lists],
        confusable=confusable,
    )


# ====================================================================== small helpers
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _KEY_ROWS
    for i, ch in enumerate(row)
}


def _typo(word: str, u_pos: float, u_op: float) -> str:
    """One keyboard slip: drop, swap, double or hit a neighbouring key (never the 1st letter)."""
    n = len(word)
    if n < 4:
        return word
    i = 1 + int(u_pos * (n - 2))  # 1 .. n-2
    op = int(u_op * 4)
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 2:
        return word[:i] + word[i] + word[i:]
    c = word[i]
    nb = _NEIGHBOURS.get(c.lower())
    if not nb:
        return word[:i] + word[i + 1 :]
    r = nb[int(u_pos * 7919) % len(nb)]
    return word[:i] + (r.upper() if c.isupper() else r) + word[i + 1 :]


def _typo_in_text(text: str, u_word: float, u_pos: float, u_op: float) -> str:
    words = text.split(" ")
    cand = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not cand:
        return text
    i = cand[int(u_word * len(cand))]
    words[i] = _typo(words[i], u_pos, u_op)
    return " ".join(words)


def _pick(u: np.ndarray, n: np.ndarray, p0: float) -> np.ndarray:
    """Index 0 with probability p0, otherwise uniform over 1..n-1 (0 when n == 1)."""
    rest = np.maximum(n - 1, 1)
    k = 1 + np.minimum(((u - p0) / max(1 - p0, 1e-12) * rest).astype(np.int64), rest - 1)
    return np.where((u < p0) | (n <= 1), 0, k)


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last.endswith("s"):
        return noun
    if last.endswith(("x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _join(parts: list[str], sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


def _zipf_p(rank: np.ndarray, s: float) -> np.ndarray:
    w = np.asarray(rank, dtype=np.float64) ** -s
    return w / w.sum()


def _ranges(lo: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ranges [lo, lo + counts): (owner of each element, element)."""
    owner = np.repeat(np.arange(len(lo)), counts)
    return owner, lo[owner] + (np.arange(len(owner)) - (np.cumsum(counts) - counts)[owner])


# ====================================================================== items
@dataclass
class _Items:
    """Latent truth of the catalogue. Internal item index j is sorted by type, so a type (and a
    category, and a department) is a contiguous range."""

    type: np.ndarray  # (N,)
    values: np.ndarray  # (N, 5) brand id, then the value of each attribute slot (-1: none)
    log_pop: np.ndarray  # (N,)
    type_start: np.ndarray  # (T + 1,)
    cat_start: np.ndarray  # (C + 1,)
    titles: np.ndarray  # (N,) object
    descriptions: np.ndarray  # (N,) object
    attributes: np.ndarray  # (N,) object, JSON text
    cat_brand_p: list[np.ndarray]


def _ojoin(cols: list[Any], sep: str) -> np.ndarray:
    """Element-wise join of object arrays of strings that skips empty strings. NumPy object
    arithmetic runs the concatenations in C, ~20x faster than a Python loop per item."""
    acc = np.asarray(cols[0], dtype=object)
    for c in cols[1:]:
        c = np.asarray(c, dtype=object)
        acc = np.where(acc == "", c, np.where(c == "", acc, acc + sep + c))
    return acc


def _flat(table: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """A ragged table as (flat object array, offsets)."""
    flat = np.asarray([x for row in table for x in row] or [""], dtype=object)
    return flat, np.concatenate([[0], np.cumsum([len(r) for r in table])])


def _fill(fmt: str, fields: dict[str, np.ndarray]) -> np.ndarray:
    """Vectorised str.format for templates such as "Meet the {b} {n}."."""
    out: Any = ""
    for literal, name, _, _ in string.Formatter().parse(fmt):
        out = out + literal if literal else out
        if name:
            out = out + fields[name]
    return np.asarray(out, dtype=object)


def _make_items(world: _World, cfg: SyntheticConfig, n: int, rng: np.random.Generator) -> _Items:
    T = world.n_types
    type_p = np.exp(cfg.type_sigma * world.type_z)
    t = np.sort(rng.choice(T, size=n, p=type_p / type_p.sum()))
    type_start = np.searchsorted(t, np.arange(T + 1))
    cat = world.type_cat[t]
    cat_start = np.searchsorted(cat, np.arange(len(world.cat_names) + 1))
    values = np.full((n, _SLOTS), -1, dtype=np.int16)  # brand ids and value indices are < 255
    cat_brand_p = []
    for c, ids in enumerate(world.cat_brands):
        p = _zipf_p(world.brand_rank[ids], cfg.brand_zipf)
        cat_brand_p.append(p)
        s, e = cat_start[c], cat_start[c + 1]
        values[s:e, 0] = ids[rng.choice(len(ids), size=e - s, p=p)]
    for tt in range(T):
        s, e = type_start[tt], type_start[tt + 1]
        for j in range(world.n_slots[tt]):
            d = world.slot_def[tt, j]
            lo, hi = world.def_off[d], world.def_off[d + 1]
            p = _zipf_p(world.def_zipf_rank[lo:hi], cfg.value_zipf)
            values[s:e, 1 + j] = rng.choice(hi - lo, size=e - s, p=p)
    b = values[:, 0].astype(np.int64)
    # latent popularity: brand pull + lognormal item effect
    log_pop = -0.35 * np.log(world.brand_rank[b]) + cfg.popularity_sigma * rng.standard_normal(n)

    # ---- every random choice of the sellers, drawn at once
    has_slot = np.arange(_MAX_ATTRS)[None, :] < world.n_slots[t][:, None]  # (N, 4)
    gv = np.where(has_slot, world.def_off[np.maximum(world.slot_def[t], 0)] + values[:, 1:], 0)
    n_tforms = np.asarray([len(f) for f in world.value_title_forms])
    form = _pick(rng.random((n, _MAX_ATTRS)), n_tforms[gv], 0.5)
    in_title = has_slot & (rng.random((n, _MAX_ATTRS)) >= cfg.title_attr_omit)
    in_json = has_slot & (rng.random((n, _MAX_ATTRS)) >= cfg.json_attr_omit)
    noun_flat, noun_off = _flat(world.title_nouns)
    noun = noun_off[t] + _pick(rng.random(n), np.diff(noun_off)[t], cfg.title_noun_canonical)
    feat_flat, feat_off = _flat(world.features)
    n_feat_t = np.diff(feat_off)[t]
    feats = feat_off[t][:, None] + (rng.random((n, 2)) * n_feat_t[:, None]).astype(np.int64)
    n_feat = np.where(n_feat_t > 0, rng.choice(3, size=n, p=[0.35, 0.45, 0.2]), 0)
    template = rng.choice(6, size=n, p=[0.38, 0.2, 0.12, 0.12, 0.1, 0.08])
    attr_order = rng.integers(0, 3, size=n)
    u_brand = rng.random(n)
    brand_style = np.select(
        [
            u_brand < cfg.brand_omit,
            u_brand < cfg.brand_omit + 0.08,
            u_brand < cfg.brand_omit + 0.11,
        ],
        [-1, 1, 2],
        0,
    )  # -1 omitted, 1 UPPER, 2 lower, 0 as registered
    has_model = rng.random(n) < cfg.model_code_rate
    model_no = rng.integers(100, 10000, size=n)
    u_mkt = rng.random(n)
    mkt = (rng.random(n) * len(_MARKETING_PREFIX)).astype(np.int64)
    u_case = rng.random(n)
    stuffed = rng.random(n) < cfg.stuffing_rate
    typo = rng.random(n) < cfg.title_typo_rate
    typo_u = rng.random((n, 3))
    desc_u = rng.random((n, 4))

    # ---- titles
    obj = functools.partial(np.asarray, dtype=object)
    names = obj(world.brands)
    B = np.select(
        [brand_style < 0, brand_style == 1, brand_style == 2],
        [
            obj(""),
            obj([x.upper() for x in world.brands])[b],
            obj([x.lower() for x in world.brands])[b],
        ],
        names[b],
    )
    N = noun_flat[noun]
    f1, f2 = feat_flat[feats[:, 0]], feat_flat[feats[:, 1]]
    F = np.where(
        n_feat == 0, "", np.where((n_feat == 1) | (feats[:, 0] == feats[:, 1]), f1, f1 + " " + f2)
    )
    M = np.where(has_model, obj([x[:2].upper() + "-" for x in world.brands])[b] + model_no.astype(str).astype(object), "")  # fmt: skip
    form_flat, form_off = _flat([list(f) for f in world.value_title_forms])
    A = np.where(in_title, form_flat[form_off[gv] + np.minimum(form, n_tforms[gv] - 1)], "")
    # seller's attribute order: as listed, reversed or rotated; then non-empty phrases first
    perm = np.asarray([[0, 1, 2, 3], [3, 2, 1, 0], [1, 2, 3, 0]])[attr_order]
    A = np.take_along_axis(A, perm, axis=1)
    A = np.take_along_axis(A, np.argsort(A == "", axis=1, kind="stable"), axis=1)
    title = np.empty(n, dtype=object)
    for k in range(6):
        ix = np.flatnonzero(template == k)
        b_, m_, n_, f_ = B[ix], M[ix], N[ix], F[ix]
        a = [A[ix, j] for j in range(_MAX_ATTRS)]
        if k == 0:  # "Voltara Smart 55 Inch TV, 4K UHD, Black"
            head, rest = _ojoin([b_, m_, f_, a[0], n_], " "), _ojoin(a[1:], ", ")
            title[ix] = np.where(rest == "", head, head + ", " + rest)
        elif k == 1:  # "Voltara TV Smart, 55 Inch, 4K UHD"
            title[ix] = _ojoin([_ojoin([b_, n_, f_], " "), *a], ", ")
        elif k == 2:  # "55 Inch 4K UHD Smart TV by Voltara"
            body = _ojoin([*a, f_, n_], " ")
            title[ix] = np.where(b_ == "", body, body + " by " + b_)
        elif k == 3:  # "TV 55 Inch 4K UHD Smart Voltara"
            title[ix] = _ojoin([n_, *a, f_, b_], " ")
        elif k == 4:  # "Voltara VO-2041 - 55 Inch 4K UHD Smart TV"
            title[ix] = _ojoin([_ojoin([b_, m_], " "), _ojoin([*a, f_, n_], " ")], " - ")
        else:  # "Voltara TV | 55 Inch | 4K UHD | Smart"
            title[ix] = _ojoin([_ojoin([b_, n_], " "), *a, f_], " | ")
    p_pre = cfg.marketing_rate * 0.55
    pre = u_mkt < p_pre
    suf = ~pre & (u_mkt < cfg.marketing_rate)
    title[pre] = obj(_MARKETING_PREFIX)[mkt[pre]] + " " + title[pre]
    title[suf] = title[suf] + " " + obj(_MARKETING_SUFFIX)[mkt[suf] % len(_MARKETING_SUFFIX)]
    # the rarer noises, one Python pass over the few items they touch
    for i in np.flatnonzero(stuffed).tolist():  # SEO stuffing: synonyms, neighbours' nouns, filler
        tt, tu = int(t[i]), typo_u[i]
        pool, conf = world.query_nouns[tt], world.confusable[tt]
        extra = [pool[int(tu[0] * 977) % len(pool)], pool[int(tu[1] * 983) % len(pool)]]
        if len(conf):
            extra.append(world.query_nouns[conf[int(tu[2] * 991) % len(conf)]][0])
        extra.append(_STUFFING_EXTRA[int(tu[0] * 997) % len(_STUFFING_EXTRA)])
        title[i] = f"{title[i]} {' '.join(dict.fromkeys(extra))}"
    for i in np.flatnonzero(typo).tolist():
        title[i] = _typo_in_text(title[i], *typo_u[i].tolist())
    for i in np.flatnonzero(u_case < cfg.caps_rate).tolist():
        title[i] = title[i].upper()
    for i in np.flatnonzero((u_case >= cfg.caps_rate) & (u_case < cfg.caps_rate + 0.02)).tolist():
        title[i] = title[i].lower()

    # ---- attributes JSON: what the seller filled in (sellers who drop the brand from the
    # title mostly drop it here too)
    brand_json = obj([f'"brand": {_json_str(x)}' for x in world.brands])
    value_json = obj([f"{_json_str(world.def_key[d])}: {_json_str(world.value_canon[g])}"
                      for d in range(len(world.def_key)) for g in range(world.def_off[d], world.def_off[d + 1])])  # fmt: skip
    J = np.where(in_json, value_json[gv], "")
    Jb = np.where((brand_style >= 0) | (u_case > 0.5), brand_json[b], "")
    attributes = "{" + _ojoin([Jb, *(J[:, j] for j in range(_MAX_ATTRS))], ", ") + "}"

    # ---- descriptions: opener, the seller's specification list, features, department closer
    if cfg.with_descriptions:
        n_low = obj([x.lower() for x in noun_flat])[noun]
        op = (desc_u[:, 1] * len(_DESC_OPENERS)).astype(np.int64)
        desc = np.empty(n, dtype=object)
        for k, fmt in enumerate(_DESC_OPENERS):
            ix = np.flatnonzero(op == k)
            desc[ix] = _fill(fmt, {"b": names[b[ix]], "n": n_low[ix]})
        value_desc = obj([f"{world.def_key[d]}: {world.value_canon[g]}"
                          for d in range(len(world.def_key)) for g in range(world.def_off[d], world.def_off[d + 1])])  # fmt: skip
        spec = _ojoin(
            [np.where(in_json[:, j], value_desc[gv[:, j]], "") for j in range(_MAX_ATTRS)], "; "
        )
        desc = np.where(spec == "", desc, desc + " Specifications: " + spec + ".")
        sent = obj([f" Features: {', '.join(fl[:c]).lower()}." if fl else "" for fl in world.features for c in (2, 3, 4)])  # fmt: skip
        desc = desc + sent[3 * t + (desc_u[:, 2] * 3).astype(np.int64)]
        closers, close_off = _flat(
            [_DESC_CLOSERS[world.dept_names[world.type_dept[x]]] for x in range(T)]
        )
        n_close = np.diff(close_off)[t]
        desc = desc + " " + closers[close_off[t] + (desc_u[:, 3] * n_close).astype(np.int64)]
        desc = np.where(desc_u[:, 0] < 0.1, "", desc)
    else:
        desc = np.full(n, "", dtype=object)
    return _Items(t, values, log_pop, type_start, cat_start, title, desc, attributes, cat_brand_p)


def _json_str(s: str) -> str:
    # json.dumps for the few characters our vocabulary has (no control characters)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ====================================================================== intents and queries
@dataclass
class _Intents:
    """What shoppers want: a type and constraints (-1 = any) on brand and attribute slots."""

    type: np.ndarray  # (G,)
    cons: np.ndarray  # (G, 5)
    anchor: np.ndarray  # (G,) an item that satisfies the intent
    searches: np.ndarray  # (G,) searches of the intent over all its spellings


def _intent_keys(types: np.ndarray, cons: np.ndarray) -> np.ndarray:
    # 8 bits per slot (values and brand ids < 255), type above: one int64 per intent
    key = types.astype(np.int64) << 40
    for s in range(_SLOTS):
        key |= (cons[:, s].astype(np.int64) + 1) << (8 * s)
    return key


def _make_intents(
    world: _World, items: _Items, cfg: SyntheticConfig, n_target: int, rng: np.random.Generator
) -> _Intents:
    n = len(items.type)
    counts = np.diff(items.type_start)
    present = np.flatnonzero(counts)
    # generic intents ("tv", "drill"): every type that has items, anchored on its top item
    g_type = present
    g_anchor = np.asarray([items.type_start[t] + int(np.argmax(items.log_pop[items.type_start[t]:items.type_start[t + 1]])) for t in present])  # fmt: skip
    types, cons, anchors = [g_type], [np.full((len(present), _SLOTS), -1)], [g_anchor]
    seen = set(_intent_keys(g_type, cons[0]).tolist())
    have = len(present)
    # specific intents: constraints copied from an anchor item, so each has a relevant item
    p_anchor = np.exp(0.5 * (items.log_pop - items.log_pop.max()))
    p_anchor /= p_anchor.sum()
    n_valid = 1 + world.n_slots[items.type]  # brand + attribute slots
    grow = 1.5
    for _ in range(40):  # rounds until enough distinct intents, or the catalogue runs dry
        if have >= n_target:
            break
        m = int((n_target - have) * grow) + 64
        a = rng.choice(n, size=m, p=p_anchor)
        k = np.minimum(rng.choice([1, 2, 3, 4], size=m, p=[0.35, 0.3, 0.22, 0.13]), n_valid[a])
        score = rng.random((m, _SLOTS))
        score[:, 0] -= 0.3  # shoppers name the brand more often than any one attribute
        score[np.arange(_SLOTS)[None, :] >= n_valid[a][:, None]] = np.inf
        rank = np.argsort(np.argsort(score, axis=1), axis=1)
        c = np.where(rank < k[:, None], items.values[a], -1)
        keys = _intent_keys(items.type[a], c)
        _, first = np.unique(keys, return_index=True)
        first = np.sort(first)
        new = [i for i in first.tolist() if keys[i] not in seen]
        new = new[: n_target - have]
        seen.update(keys[new].tolist())
        types.append(items.type[a][new])
        cons.append(c[new])
        anchors.append(a[new])
        have += len(new)
        if len(new) < 0.002 * m:  # the catalogue is running dry
            break
        grow = min(grow * 1.5, 20.0)
    t = np.concatenate(types)
    c = np.concatenate(cons)
    anchor = np.concatenate(anchors)
    # appeal of an intent: big types, popular brands and common values, broad over specific
    type_share = counts[t] / n
    share = type_share**0.7
    brand_ok = c[:, 0] >= 0
    bshare = np.ones(len(t))
    if brand_ok.any():
        rank_b = world.brand_rank[np.maximum(c[:, 0], 0)]
        bshare = np.where(brand_ok, np.sqrt(rank_b**-cfg.brand_zipf), 1.0)
    vshare = np.ones(len(t))
    for j in range(_MAX_ATTRS):
        on = c[:, 1 + j] >= 0
        gv = world.def_off[np.maximum(world.slot_def[t, j], 0)] + np.maximum(c[:, 1 + j], 0)
        vshare *= np.where(on, np.sqrt(world.def_zipf_rank[gv] ** -cfg.value_zipf), 1.0)
    k_cons = (c >= 0).sum(axis=1)
    appeal = share * bshare * vshare * 0.35**k_cons * np.exp(0.8 * rng.standard_normal(len(t)))
    order = np.argsort(-appeal, kind="stable")
    rank = np.empty(len(t), dtype=np.int64)
    rank[order] = np.arange(1, len(t) + 1)
    lam = rank.astype(np.float64) ** -cfg.query_zipf
    lam *= cfg.searches_per_query * len(t) / lam.sum()
    searches = np.maximum(1, rng.poisson(lam))
    return _Intents(t, c, anchor, searches)


@dataclass
class _Queries:
    text: list[str]
    intent: np.ndarray  # (Q,)
    searches: np.ndarray  # (Q,)


def _make_queries(
    world: _World, intents: _Intents, cfg: SyntheticConfig, n_target: int, rng: np.random.Generator
) -> _Queries:
    """Type each intent as one or more strings, intents in turn (generic ones first), until
    n_target distinct strings exist."""
    G = len(intents.type)
    f = intents.searches
    n_var = 1 + np.minimum(6, rng.poisson(0.2 + 0.4 * np.log10(1 + f)))
    U = rng.random((int(n_var.sum()), 17)).tolist()  # one row of uniforms per spelling
    vstart = np.concatenate([[0], np.cumsum(n_var)]).tolist()
    n_generic = int(((intents.cons >= 0).sum(axis=1) == 0).sum())
    order = np.concatenate([np.arange(n_generic), n_generic + rng.permutation(G - n_generic)])
    share_u = rng.random((G, 7))
    qforms = world.value_query_forms
    slot_def = world.slot_def
    def_off = world.def_off
    by_norm: dict[str, int] = {}
    texts: list[str] = []
    q_intent: list[int] = []
    q_searches: list[int] = []
    for g in order.tolist():
        if len(texts) >= n_target:
            break
        t = int(intents.type[g])
        c = intents.cons[g].tolist()
        nouns = world.query_nouns[t]
        nv = int(n_var[g])
        # split the intent's searches: the main spelling gets one search, then shares 1, .35/j
        w = np.asarray([1.0] + [0.35 / j for j in range(1, nv)])
        split = np.floor(w / w.sum() * (int(f[g]) - 1) + share_u[g, :nv]).astype(int)
        split[0] += 1
        strings: dict[str, int] = {}
        for j in range(nv):
            if split[j] <= 0:
                continue
            u = U[vstart[g] + j]
            noun = (
                nouns[0]
                if u[0] < cfg.query_noun_canonical or len(nouns) == 1
                else nouns[1 + int(u[1] * (len(nouns) - 1))]
            )
            if u[2] < 0.2:
                noun = _plural(noun)
            brand = world.brands[c[0]].lower() if c[0] >= 0 else ""
            attrs = []
            for s in range(1, _SLOTS):
                if c[s] >= 0:
                    forms = qforms[def_off[slot_def[t, s - 1]] + c[s]]
                    k = (
                        0
                        if u[3 + s] < 0.6 or len(forms) == 1
                        else 1 + int(u[11 + s] * (len(forms) - 1))
                    )
                    attrs.append(forms[k])
            if u[3] < 0.5:
                attrs.reverse()
            p = u[8]
            if p < 0.55:
                parts = [brand, *attrs, noun]
            elif p < 0.8:
                parts = [brand, noun, *attrs]
            elif p < 0.93:
                parts = [*attrs, noun, brand]
            else:
                parts = [noun, *attrs, brand]
            text = _join(parts)
            if u[9] < (cfg.query_typo_rate if j == 0 else cfg.variant_typo_rate):
                text = _typo_in_text(text, u[10], u[11], u[16])
            strings[text] = strings.get(text, 0) + int(split[j])
        for text, s in strings.items():
            if len(texts) >= n_target:
                break
            key = normalize_text(text)
            if key in by_norm:  # another intent typed the same string first: it keeps it
                q_searches[by_norm[key]] += s
                continue
            by_norm[key] = len(texts)
            texts.append(text)
            q_intent.append(g)
            q_searches.append(s)
    if len(texts) < n_target:
        logger.warning(
            "synthetic: asked for %d queries but the catalogue supports only %d distinct ones; "
            "use more items or fewer queries",
            n_target,
            len(texts),
        )
    return _Queries(
        texts, np.asarray(q_intent, dtype=np.int64), np.asarray(q_searches, dtype=np.float64)
    )


# ====================================================================== judgments
@dataclass
class _Pool:
    """Judged (intent, item, grade) triples, sorted by intent then item; ptr is the CSR index."""

    item: np.ndarray  # (P,)
    grade: np.ndarray  # (P,)
    ptr: np.ndarray  # (G + 1,)


def _grades(
    world: _World, items: _Items, intents: _Intents, g: np.ndarray, i: np.ndarray
) -> np.ndarray:
    """3: right type, all constraints met; 2: right type, a constraint differs;
    1: same category, other type; 0: unrelated."""
    same_type = items.type[i] == intents.type[g]
    c = intents.cons[g]
    ok = ((c < 0) | (c == items.values[i])).all(axis=1)
    same_cat = world.type_cat[items.type[i]] == world.type_cat[intents.type[g]]
    return np.where(same_type, np.where(ok, 3, 2), np.where(same_cat, 1, 0)).astype(np.int8)


def _rank_in_group(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted array."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    return np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))


def _member(x: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """x in sorted_keys, element-wise. Sorting the needles first keeps the binary searches
    cache-friendly: ~10x faster than searching millions of random needles."""
    if len(sorted_keys) == 0 or len(x) == 0:
        return np.zeros(len(x), dtype=bool)
    o = np.argsort(x)
    xs = x[o]
    at = np.minimum(np.searchsorted(sorted_keys, xs), len(sorted_keys) - 1)
    hit = np.empty(len(x), dtype=bool)
    hit[o] = sorted_keys[at] == xs
    return hit


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    # sort-based: much faster than np.unique's hash path on millions of int64 keys
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _judge(
    world: _World, items: _Items, intents: _Intents, cfg: SyntheticConfig, rng: np.random.Generator
) -> _Pool:
    G = len(intents.type)
    N = len(items.type)
    counts = np.diff(items.type_start)
    gs_parts: list[np.ndarray] = [np.arange(G)]
    is_parts: list[np.ndarray] = [intents.anchor]
    # 1. relevant items: the exact match set of each intent, found by sorting items on the
    # intent's constrained slots (one sort per constraint pattern); broad intents keep the
    # most popular half of `judged_relevant` plus a uniform sample of the rest (pooling)
    R = cfg.judged_relevant
    pattern = ((intents.cons >= 0) * (1 << np.arange(_SLOTS))).sum(axis=1)
    by_pop = np.argsort(-items.log_pop, kind="stable")
    for pat in np.unique(pattern).tolist():
        gs = np.flatnonzero(pattern == pat)
        ikey = items.type.astype(np.int64) << 40
        qkey = intents.type[gs].astype(np.int64) << 40
        for s in range(_SLOTS):
            if pat >> s & 1:
                ikey |= (items.values[:, s].astype(np.int64) + 1) << (8 * s)
                qkey |= (intents.cons[gs, s].astype(np.int64) + 1) << (8 * s)
        order = by_pop[np.argsort(ikey[by_pop], kind="stable")]  # by key, then popularity
        skey = ikey[order]
        lo = np.searchsorted(skey, qkey, side="left")
        cnt = np.searchsorted(skey, qkey, side="right") - lo
        k_top = np.where(cnt <= R, cnt, R // 2)
        owner, pos = _ranges(lo, k_top)
        gs_parts.append(gs[owner])
        is_parts.append(order[pos])
        k_rand = np.where(cnt > R, R - R // 2, 0)
        owner = np.repeat(np.arange(len(gs)), k_rand)
        rest = cnt[owner] - R // 2
        pos = lo[owner] + R // 2 + (rng.random(len(owner)) * rest).astype(np.int64)
        gs_parts.append(gs[owner])
        is_parts.append(order[pos])
    t = intents.type
    # 2. near misses: same type with the fewest broken constraints
    spec = np.flatnonzero((intents.cons >= 0).any(axis=1))
    if cfg.judged_near and len(spec):
        m = 3 * cfg.judged_near
        owner = np.repeat(spec, m)
        i = items.type_start[t[owner]] + (rng.random(len(owner)) * counts[t[owner]]).astype(
            np.int64
        )
        c = intents.cons[owner]
        broken = ((c >= 0) & (c != items.values[i])).sum(axis=1)
        keep = broken > 0
        owner, i, broken = owner[keep], i[keep], broken[keep]
        o = np.lexsort((rng.random(len(owner)), broken, owner))
        owner, i = owner[o], i[o]
        sel = _rank_in_group(owner) < cfg.judged_near
        gs_parts.append(owner[sel])
        is_parts.append(i[sel])
    # 3. same category, another type
    if cfg.judged_category:
        cat = world.type_cat[t]
        n_other = (items.cat_start[cat + 1] - items.cat_start[cat]) - counts[t]
        owner = np.repeat(np.flatnonzero(n_other > 0), cfg.judged_category)
        u = (rng.random(len(owner)) * n_other[owner]).astype(np.int64)
        pos = items.cat_start[cat[owner]] + u
        ts = items.type_start[t[owner]]
        pos = np.where(pos >= ts, pos + counts[t[owner]], pos)
        gs_parts.append(owner)
        is_parts.append(pos)
    # 4. lexical look-alikes: items of types whose nouns share a word ("tv" -> "tv mount")
    if cfg.judged_lexical:
        n_conf = np.asarray([len(world.confusable[x]) for x in range(world.n_types)])
        conf_ptr = np.concatenate([[0], np.cumsum(n_conf)])
        conf_flat = np.concatenate([world.confusable[x] for x in range(world.n_types)])
        owner = np.repeat(np.flatnonzero(n_conf[t] > 0), cfg.judged_lexical)
        ct = conf_flat[
            conf_ptr[t[owner]] + (rng.random(len(owner)) * n_conf[t[owner]]).astype(np.int64)
        ]
        ok = counts[ct] > 0
        owner, ct = owner[ok], ct[ok]
        gs_parts.append(owner)
        is_parts.append(
            items.type_start[ct] + (rng.random(len(owner)) * counts[ct]).astype(np.int64)
        )
    # 5. random items
    if cfg.judged_random:
        owner = np.repeat(np.arange(G), cfg.judged_random)
        gs_parts.append(owner)
        is_parts.append(rng.integers(0, N, size=len(owner)))
    key = _sorted_unique(np.concatenate(gs_parts).astype(np.int64) * N + np.concatenate(is_parts))
    g, i = key // N, key % N
    ptr = np.searchsorted(g, np.arange(G + 1))
    return _Pool(i, _grades(world, items, intents, g, i), ptr)


# ====================================================================== clicks
_TOKEN = re.compile(r"[a-z0-9]+|\n")


def _token_ids(texts: Any, vocab: dict[str, int] | None = None):
    """Simple lexical analysis of the simulated search engine: lower-case alphanumeric runs, a
    trailing plural "s" stripped. Returns (owner, token id, vocabulary)."""
    # one regex pass over all texts joined by newlines (texts have none): no per-text overhead
    toks = _TOKEN.findall("\n".join(t.replace("\n", " ") for t in texts).lower() + "\n")
    codes, uniques = pd.factorize(np.asarray(toks, dtype=object))
    newline = codes == uniques.tolist().index("\n")
    owner = np.cumsum(newline) - newline  # the text each token belongs to
    stems = [
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in uniques
    ]
    if vocab is None:
        vocab = {}
    stem_ids = np.asarray([vocab.setdefault(s, len(vocab)) for s in stems], dtype=np.int64)
    keep = ~newline
    return owner[keep], stem_ids[codes[keep]], vocab


def _simulate_log(
    items: _Items, queries: _Queries, pool: _Pool, cfg: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per query string: rank its judged pool with a lexical ranker, show the top list_length,
    and draw clicks from a position-bias examination model. Returns (row, item, grade, clicks)
    for every judged (query row, item) pair."""
    N = len(items.type)
    g = queries.intent
    row, pidx = _ranges(pool.ptr[g], pool.ptr[g + 1] - pool.ptr[g])
    item, grade = pool.item[pidx], pool.grade[pidx]
    # BM25-like lexical evidence: IDF-weighted share of the query's terms found in the title
    t_owner, t_tok, vocab = _token_ids(items.titles)
    V = len(vocab) + 1
    ikeys = _sorted_unique(t_owner * V + t_tok)
    df = np.bincount(ikeys % V, minlength=V)
    idf = np.log(1 + (N - df + 0.5) / (df + 0.5))
    q_owner, q_tok, _ = _token_ids(queries.text, dict(vocab))
    known = q_tok < V - 1  # words no title uses match nothing
    qk = _sorted_unique(q_owner[known] * V + q_tok[known])
    q_owner, q_tok = qk // V, qk % V
    q_ptr = np.searchsorted(q_owner, np.arange(len(queries.text) + 1))
    q_total = np.bincount(q_owner, weights=idf[q_tok], minlength=len(queries.text))
    p_of, tpos = _ranges(q_ptr[row], q_ptr[row + 1] - q_ptr[row])
    want = item[p_of] * V + q_tok[tpos]
    hit = _member(want, ikeys)
    lex = np.bincount(p_of, weights=idf[q_tok[tpos]] * hit, minlength=len(row))
    coverage = lex / np.maximum(q_total[row], 1e-9)
    zpop = (items.log_pop - items.log_pop.mean()) / max(items.log_pop.std(), 1e-9)
    score = coverage + 0.2 * zpop[item] + 0.2 * rng.standard_normal(len(row))
    order = np.lexsort((-score, row))
    rank = np.empty(len(row), dtype=np.int64)
    rank[order] = _rank_in_group(row[order])
    examine = (1.0 + rank) ** -cfg.position_bias
    attract = np.asarray(cfg.click_prob)[grade] * np.exp(0.25 * zpop[item])
    p = np.where(rank < cfg.list_length, np.clip(examine * attract, 0.0, 1.0), 0.0)
    clicks = rng.binomial(queries.searches[row].astype(np.int64), p)
    return row, item, grade, clicks


# ====================================================================== public API
def auto_judged_relevant(n_items: int) -> int:
    """Relevant items judged per query by default: 100 up to 20k items (judgments complete for
    nearly every query), falling to 30 at 67k items and above (pooled: see the README)."""
    return int(np.clip(2_000_000 // max(n_items, 1), 30, 100))


def default_n_queries(n_items: int) -> int:
    """Distinct query strings generated when n_queries is None: n_items / 2, within 500..100k."""
    return int(min(max(500, n_items // 2), 100_000))


def _resolve(
    n_items: int, n_queries: int | None, seed: int, options: dict
) -> tuple[int, int, SyntheticConfig]:
    check_options(options, OPTIONS, "make_marketplace")
    if (
        isinstance(n_items, bool)
        or not isinstance(n_items, int | np.integer)
        or not MIN_ITEMS <= n_items <= MAX_ITEMS
    ):
        raise ValueError(
            f"n_items must be an integer in [{MIN_ITEMS}, {MAX_ITEMS}], got {n_items!r}"
        )
    if n_queries is None:
        n_queries = default_n_queries(int(n_items))
    if isinstance(n_queries, bool) or not isinstance(n_queries, int | np.integer) or n_queries < 10:
        raise ValueError(
            f"n_queries must be an integer >= 10 or None (default n_items/2), got {n_queries!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    opts = dict(options)
    for name in ("split_fractions", "click_prob"):
        if name in opts:
            opts[name] = tuple(opts[name])
    if opts.get("judged_relevant") is None:
        opts["judged_relevant"] = auto_judged_relevant(int(n_items))
    if isinstance(opts.get("bucket_rule"), str):
        opts["bucket_rule"] = BucketRule.parse(opts["bucket_rule"])
    elif isinstance(opts.get("bucket_rule"), dict):
        opts["bucket_rule"] = BucketRule.from_dict(opts["bucket_rule"])
    return int(n_items), int(n_queries), SyntheticConfig(**opts)


def synthetic_info(
    n_items: int = 5000, n_queries: int | None = None, seed: int = 0, **options: Any
) -> dict[str, Any]:
    """The generator parameters make_marketplace would use (resolved defaults), without generating.
    The same dict is stored as `Dataset.info["generator"]`."""
    n_items, n_queries, cfg = _resolve(n_items, n_queries, seed, options)
    world = _world()
    return {
        "name": "gsid.data.synthetic.make_marketplace",
        "version": GENERATOR_VERSION,
        "n_items": n_items,
        "n_queries": n_queries,
        "seed": int(seed),
        "world": {
            "departments": len(world.dept_names),
            "categories": len(world.cat_names),
            "types": world.n_types,
            "brands": len(world.brands),
            "attributes": len(world.def_key),
        },
        "options": cfg.to_dict(),
    }


def make_marketplace(
    n_items: int = 5000,
    n_queries: int | None = None,
    seed: int = 0,
    show_progress: bool | None = None,
    **options: Any,
) -> Dataset:
    """Generate a synthetic marketplace Dataset (name "synthetic-<n_items>").

    n_items: catalogue size, 100 .. 5,000,000.
    n_queries: distinct query strings (default n_items / 2 within 500 .. 100,000); fewer come
        out (with a warning) when a tiny catalogue cannot support that many distinct intents.
    seed: the same seed gives an identical Dataset.
    options: any field of SyntheticConfig (e.g. split_fractions=(0.8, 0.1, 0.1),
        judged_relevant=30, list_length=10, query_zipf=0.8); unknown names are rejected.

    queries.frequency = number of simulated searches of the string; log.weight = clicks;
    judgments.grade in 0..3 with relevance_threshold 2.5 (only grade 3 is relevant).
    """

    info = synthetic_info(n_items, n_queries, seed, **options)
    n_items, n_queries, cfg = _resolve(n_items, n_queries, seed, options)
    rng = np.random.default_rng(seed)
    world = _world()
    timings: dict[str, float] = {}
    bar = progress_bar(total=5, desc="synthetic", show_progress=show_progress)
    t0 = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        items = _make_items(world, cfg, n_items, rng)
        step("items")
        intents = _make_intents(world, items, cfg, n_queries, rng)
        queries = _make_queries(world, intents, cfg, n_queries, rng)
        step("queries")
        pool = _judge(world, items, intents, cfg, rng)
        step("judgments")
        row, item, grade, clicks = _simulate_log(items, queries, pool, cfg, rng)
        step("clicks")
        ds = _assemble(
            world, items, intents, queries, row, item, grade, clicks, cfg, n_items, seed, info, rng
        )
        step("dataset")
    finally:
        bar.close()
    # timings are logged, not stored: the same seed must give an identical Dataset, info included
    logger.info("synthetic-%d generated in %.1fs %s", n_items, sum(timings.values()), timings)
    return ds


def _assemble(
    world, items, intents, queries, row, item, grade, clicks, cfg, n_items, seed, info, rng
) -> Dataset:
    n = len(items.type)
    # item ids are a random permutation, so neither ids nor row order reveal the type
    perm = rng.permutation(n)
    width = len(str(n - 1))
    ids = np.asarray([f"i{k:0{width}d}" for k in range(n)], dtype=object)
    item_id = ids[perm]  # internal index -> id
    rows = np.argsort(perm)  # output row k holds the internal item with id k
    paths = np.asarray(world.type_paths, dtype=object)
    items_df = pd.DataFrame({
        "item_id": ids,
        "title": np.asarray(items.titles, dtype=object)[rows],
        "description": np.asarray(items.descriptions, dtype=object)[rows],
        "category": paths[items.type[rows]],
        "attributes": np.asarray(items.attributes, dtype=object)[rows],
    })  # fmt: skip
    # query ids follow search volume: q0000 is the most searched string
    Q = len(queries.text)
    qorder = np.argsort(-queries.searches, kind="stable")
    qwidth = len(str(Q - 1))
    qid = np.empty(Q, dtype=object)
    qid[qorder] = [f"q{k:0{qwidth}d}" for k in range(Q)]
    splits = [hash_split(q, cfg.split_fractions, seed) for q in queries.text]
    queries_df = pd.DataFrame({
        "query_id": qid[qorder],
        "query": np.asarray(queries.text, dtype=object)[qorder],
        "split": np.asarray(splits, dtype=object)[qorder],
        "frequency": queries.searches[qorder],
    })  # fmt: skip
    judg = pd.DataFrame(
        {"query_id": qid[row], "item_id": item_id[item], "grade": grade.astype(np.float64)}
    )
    clicked = clicks > 0
    log = pd.DataFrame({
        "query_id": qid[row[clicked]],
        "item_id": item_id[item[clicked]],
        "weight": clicks[clicked].astype(np.float64),
    })  # fmt: skip
    n_clicked = len(np.unique(item[clicked]))
    g_cons = (intents.cons[queries.intent] >= 0).sum(axis=1)
    stats = {
        "intents": int(len(np.unique(queries.intent))),
        "searches": int(queries.searches.sum()),
        "clicks": int(clicks.sum()),
        "clicks_per_search": round(float(clicks.sum() / max(queries.searches.sum(), 1)), 4),
        "click_share_by_grade": [round(float(x), 4) for x in np.bincount(grade, weights=clicks, minlength=4) / max(clicks.sum(), 1)],
        "items_never_clicked": round(1 - n_clicked / n, 4),
        "queries_by_constraints": np.bincount(g_cons, minlength=_SLOTS + 1).tolist(),
        "judgments_by_grade": np.bincount(grade, minlength=4).tolist(),
        "types_with_items": int((np.diff(items.type_start) > 0).sum()),
    }  # fmt: skip
    info = {**info, "stats": stats}
    return Dataset(
        items=items_df,
        queries=queries_df,
        log=log,
        judgments=judg,
        name=f"synthetic-{n_items}",
        relevance_threshold=cfg.relevance_threshold,
        bucket_rule=cfg.bucket_rule,
        info={
            "source": "synthetic",
            "generator": info,
            "frequency_from": "searches",
            "split_seed": int(seed),
            "split_fractions": list(cfg.split_fractions),
            "relevance": "grade 3: right type, brand and attributes; 2: right type, a constraint differs; 1: same category; 0: unrelated",
        },
    )
